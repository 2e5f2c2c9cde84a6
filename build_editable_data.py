"""Build-time only: make ``pip install -e .`` install ``data_files`` like a normal install does.

setuptools' editable wheel means to install data files ("written directly to the unpacked wheel") but asks the
distribution for ``has_data()``, which does not exist (the method is ``has_data_files()``), so an editable install
silently leaves out ``etc/jupyter/...`` and ``share/jupyter/...`` (setuptools 84.2; see pypa/pip#6592). Without
them the server extension would not be enabled and the JupyterLab extension not found in a checkout installed
the way ``.ci/dev.py`` does it. Named in ``[tool.setuptools.cmdclass]``; harmless once setuptools is fixed.
"""
from setuptools.command.editable_wheel import editable_wheel


class EditableWheelWithData(editable_wheel):
    def _run_install(self, category: str) -> None:
        if category == "data" and self.distribution.has_data_files():
            self.run_command("install_data")  # runs once even if setuptools starts doing it too
        else:
            super()._run_install(category)
