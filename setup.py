"""The one compiled part: the log listing's `readdir` and `fstatat` (see `_liststat.c`).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
package installs anyway and lists folders in Python and Arrow.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "dutydesk.logs._liststat",
            ["src/dutydesk/logs/_liststat.c"],
            optional=True,
        )
    ]
)
