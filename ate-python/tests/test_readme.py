"""The Python example in the top-level README runs as written."""

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_python_examples_run():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})


def test_package_docstring_examples_run():
    import doctest

    import ate

    failures, tried = doctest.testmod(ate, verbose=False)
    assert tried > 0 and failures == 0
