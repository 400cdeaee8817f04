"""The README's API tour runs as written and prints what it claims."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(capsys):
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has a python tour"
    for code in blocks:
        exec(compile(code, str(README), "exec"), {})
    out = capsys.readouterr().out.split("\n")
    v_b, i_r1, kcl = (float(x) for x in out[0].split())
    # Ideal diode clamps b at v_on = 0.3 V; R1 carries (1 - 0.3) / 1 kΩ.
    assert abs(v_b - 0.3) < 1e-12
    assert abs(i_r1 - 0.7e-3) < 1e-15
    assert kcl < 1e-15
    assert out[1] == "(2, 10001)"
    v_out = float(out[2])
    assert 0.5 < v_out < 1.2
    # Centered EP agrees with the exact gradient (the tour's claim).
    assert out[3] == "True"


def test_readme_first_lines_are_the_two_commands():
    lines = README.read_text().split("\n")
    block = lines[lines.index("```bash") + 1: lines.index("```bash") + 3]
    assert block == ["pip install . && ohmflow train", "bash scripts/test-all.sh"]
