"""The learning loop: labelled features in, evaluated and promoted models out.

* :mod:`.feature_store` - ``labelled_features``: features at decision time joined with labels;
* :mod:`.metrics` - the Fraud Detection Handbook's AUC ROC, average precision, card precision@k;
* :mod:`.train` - LightGBM training and :class:`TrainedModel` (the detector's ``Model``);
* :mod:`.registry` - versioned models in PostgreSQL (one active), promotion policy;
* :mod:`.watcher` - :class:`ModelWatcher`, hot reload of the active model in the detector.

Only the light modules are imported here; :mod:`.metrics` pulls in scikit-learn when used.
"""

from fraudstream.learning.registry import ModelInfo, should_promote
from fraudstream.learning.train import KIND, TrainedModel, train_model
from fraudstream.learning.watcher import ModelWatcher

__all__ = ["KIND", "ModelInfo", "ModelWatcher", "TrainedModel", "should_promote", "train_model"]
