"""tools/model_table.py: --configs' rows printed and, with --json, written under the output
rule (a user's file at --json is refused unless --overwrite; its own earlier file is not)."""

import json
import runpy
from pathlib import Path

from pose.config import save_config
from pose.errors import run_tool

ROOT = Path(__file__).resolve().parents[2]


def test_json_rows_and_the_output_rule(tmp_path, tiny_config, capsys):
    from pose.engine.checkpoint import build_model
    from pose.models.complexity import count_trainable_params

    main = runpy.run_path(str(ROOT / "tools" / "model_table.py"), run_name="tool")["main"]
    config = tmp_path / "tiny.yaml"
    save_config(tiny_config, config)
    out = tmp_path / "rows.json"
    out.write_text("my notes")
    assert run_tool(main, [str(config), "--json", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --json {out} exists and this tool did not write it")
    assert out.read_text() == "my notes"
    assert run_tool(main, [str(config), "--json", str(out), "--overwrite"]) == 0
    (row,) = json.loads(out.read_text())
    assert row["params"] == count_trainable_params(build_model(tiny_config.model))
    assert run_tool(main, [str(config), "--json", str(out)]) == 0  # its own file
    assert "tiny.yaml" in capsys.readouterr().out
