"""ArmoRM: multi-objective regression + mixture-of-experts gating. Importing registers the Auto classes."""

from transformers import AutoConfig, AutoModel

from armo_rm.modeling import ArmoRMConfig, ArmoRMModel

AutoConfig.register(ArmoRMConfig.model_type, ArmoRMConfig, exist_ok=True)
AutoModel.register(ArmoRMConfig, ArmoRMModel, exist_ok=True)

__all__ = ["ArmoRMConfig", "ArmoRMModel"]
