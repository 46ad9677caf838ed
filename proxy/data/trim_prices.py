#!/usr/bin/env python3
"""Trim LiteLLM's price catalogue down to what the sub2api gateway bills.

Usage:
    python3 trim_prices.py PATH [OUT]

PATH is either a LiteLLM wheel (``litellm-*.whl``; the catalogue is read from
``litellm/model_prices_and_context_window_backup.json`` inside it) or that JSON
file itself. OUT defaults to ``model_prices.json`` next to this script.

Kept: every entry whose ``litellm_provider`` is in PROVIDERS, whose ``mode`` is in
MODES and that has both per-token prices (this drops e.g. ``openai/container``,
which is priced per session), with only the fields in FIELDS, in that order.
Pure alias entries (``{"alias_of": "<key>"}``) are kept as a copy of their target
when the target is kept. ``sample_spec`` is skipped. The output is sorted by key,
one entry a line, and byte-for-byte reproducible from the same input.
"""

import json
import pathlib
import sys
import zipfile

CATALOGUE = "litellm/model_prices_and_context_window_backup.json"
PROVIDERS = {"anthropic", "openai", "gemini"}
MODES = {"chat", "responses"}
FIELDS = [
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_creation_input_token_cost",
    "cache_creation_input_token_cost_above_1hr",
    "cache_read_input_token_cost",
    "litellm_provider",
    "mode",
    "max_input_tokens",
    "max_output_tokens",
]


def load(path: pathlib.Path) -> dict:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return json.loads(wheel.read(CATALOGUE))
    return json.loads(path.read_text(encoding="utf-8"))


def trim(catalogue: dict) -> dict:
    kept = {}
    for key, entry in catalogue.items():
        if key == "sample_spec" or not isinstance(entry, dict):
            continue
        billable = "input_cost_per_token" in entry and "output_cost_per_token" in entry
        if billable and entry.get("litellm_provider") in PROVIDERS and entry.get("mode") in MODES:
            kept[key] = {f: entry[f] for f in FIELDS if f in entry}
    for key, entry in catalogue.items():
        target = entry.get("alias_of") if isinstance(entry, dict) else None
        if target in kept and key not in kept:
            kept[key] = dict(kept[target])
    return dict(sorted(kept.items()))


def render(table: dict) -> str:
    lines = [f"  {json.dumps(key)}: {json.dumps(entry)}" for key, entry in table.items()]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    source = pathlib.Path(sys.argv[1])
    out = pathlib.Path(sys.argv[2]) if len(sys.argv) == 3 else pathlib.Path(__file__).with_name("model_prices.json")
    table = trim(load(source))
    out.write_text(render(table), encoding="utf-8")
    print(f"{len(table)} entries -> {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
