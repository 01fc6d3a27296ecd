"""``kernelflow run``: the whole workflow, raw table to served model.

``Workflow(config).run()`` / ``Workflow.from_toml(path).run()`` -> ``WorkflowResult``; the stages
are in ``kernelflow.workflow.stages``, the config schema in ``kernelflow.workflow.config``.
"""

from kernelflow.workflow.config import ConfigError, WorkflowConfig, config_to_toml, load_config
from kernelflow.workflow.workflow import Workflow, WorkflowResult

__all__ = ["ConfigError", "Workflow", "WorkflowConfig", "WorkflowResult", "config_to_toml", "load_config"]
