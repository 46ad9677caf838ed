//! Where the relay writes its answer. Until the response head is sent the relay may still
//! pick another account or answer with a status of its own; once a stream has started, the
//! only way left to report a failure is one terminal in-stream error event.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use tokio::sync::{mpsc, oneshot};

/// Chunks buffered between the relay and the client connection.
const STREAM_BUFFER: usize = 16;

pub(super) enum Sink {
    /// Nothing sent yet; the handler waits for the response head here.
    Pending(oneshot::Sender<Response>),
    /// The head went out; body chunks follow.
    Streaming(mpsc::Sender<Result<Bytes, Infallible>>),
    /// A complete response was sent, or the client went away.
    Closed,
}

impl Sink {
    pub(super) fn new() -> (Sink, oneshot::Receiver<Response>) {
        let (tx, rx) = oneshot::channel();
        (Sink::Pending(tx), rx)
    }

    pub(super) fn is_started(&self) -> bool {
        !matches!(self, Sink::Pending(_))
    }

    /// Sends a complete response. `false`: the client is gone, or a stream already started
    /// (the caller then reports through [`send`](Self::send)).
    pub(super) fn respond(&mut self, res: Response) -> bool {
        match std::mem::replace(self, Sink::Closed) {
            Sink::Pending(tx) => tx.send(res).is_ok(),
            other => {
                *self = other;
                false
            }
        }
    }

    /// Sends the head of a streamed response. `false`: the client is gone.
    pub(super) fn start_stream(&mut self, status: StatusCode, headers: HeaderMap) -> bool {
        let Sink::Pending(_) = self else {
            return matches!(self, Sink::Streaming(_));
        };
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        let body = Body::from_stream(tokio_stream_shim::ReceiverStream(rx));
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        let ok = self.respond(res);
        *self = if ok { Sink::Streaming(tx) } else { Sink::Closed };
        ok
    }

    /// Sends one body chunk of a started stream. `false`: the client is gone.
    pub(super) async fn send(&mut self, chunk: Bytes) -> bool {
        let Sink::Streaming(tx) = self else {
            return false;
        };
        if tx.send(Ok(chunk)).await.is_ok() {
            return true;
        }
        *self = Sink::Closed;
        false
    }

    /// Resolves when the client has gone away (never, once the answer is complete).
    pub(super) async fn closed(&mut self) {
        match self {
            Sink::Pending(tx) => tx.closed().await,
            Sink::Streaming(tx) => tx.closed().await,
            Sink::Closed => std::future::pending().await,
        }
    }
}

/// A `Stream` over an mpsc receiver (what `tokio-stream`'s wrapper does, without the crate).
mod tokio_stream_shim {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::mpsc;

    pub(crate) struct ReceiverStream<T>(pub(crate) mpsc::Receiver<T>);

    impl<T> futures_util::Stream for ReceiverStream<T> {
        type Item = T;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
            self.0.poll_recv(cx)
        }
    }
}
