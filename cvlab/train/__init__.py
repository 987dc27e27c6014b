"""Retraining DetectNet_v2: Keras model, TAO targets/loss/schedule, tf.data input, trainer.

Heavy modules (TensorFlow) are imported only when a submodule is used, e.g.
``from cvlab.train.trainer import TrainConfig, train``.
"""
