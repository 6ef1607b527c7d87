"""The Python examples in the top-level README and in ate-python's README run as written."""

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("readme", [ROOT / "README.md", ROOT / "ate-python" / "README.md"], ids=lambda p: str(p.relative_to(ROOT)))
def test_readme_python_examples_run(readme):
    blocks = re.findall(r"```python\n(.*?)```", readme.read_text(), re.S)
    assert blocks, f"{readme} has no Python example"
    for block in blocks:
        exec(compile(block, str(readme), "exec"), {})


def test_package_docstring_examples_run():
    import doctest

    import ate

    failures, tried = doctest.testmod(ate, verbose=False)
    assert tried > 0 and failures == 0
