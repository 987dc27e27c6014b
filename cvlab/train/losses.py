"""DetectNet_v2 cost, as TAO's ``cost_function_config`` defines it.

Per class ``c``: ``cov_cost = mean(weighted BCE(cov_target, cov_pred))`` where cells with
``target > 0.5`` are weighted by ``coverage_foreground_weight`` and the others by
``1 - coverage_foreground_weight`` (TAO ``weighted_binary_cross_entropy_cost``);
``bbox_cost = mean(cov_norm * |bbox_pred - bbox_target|)`` (TAO ``weighted_L1_cost``, the
``cov_norm`` raster is zero outside the coverage so it also masks). The total is
``sum_c class_weight_c * sum_o objective_weight_{c,o} * cost_{c,o}`` with class weights
normalised to sum 1 and objective weights normalised to sum 1 per class. With
``enable_autoweighting`` the objective weights are recomputed at the end of each epoch from the
epoch's mean costs: ``w_o ∝ weight_target_o / mean_cost_o`` (TAO ``CostAutoWeightHook``).

Example:
    >>> cfg = CostConfig.default(["person"])
    >>> cfg.normalised_objective_weights()["person"]
    {'cov': 0.09090909090909091, 'bbox': 0.9090909090909091}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

EPSILON = 1e-5


@dataclass
class Objective:
    name: str  # "cov" or "bbox"
    initial_weight: float
    weight_target: float


@dataclass
class TargetClassCost:
    name: str
    class_weight: float = 1.0
    coverage_foreground_weight: float = 0.05
    objectives: list[Objective] = field(
        default_factory=lambda: [Objective("cov", 1.0, 1.0), Objective("bbox", 10.0, 10.0)]
    )


@dataclass
class CostConfig:
    """TAO ``cost_function_config``."""

    target_classes: list[TargetClassCost]
    enable_autoweighting: bool = True
    max_objective_weight: float = 0.9999
    min_objective_weight: float = 0.0001

    @classmethod
    def default(cls, class_names: Sequence[str], **kwargs) -> CostConfig:
        """TAO's default spec (and the lab's): foreground weight 0.05; cov 1.0/1.0 and bbox
        10.0/10.0 (initial weight / weight target)."""
        return cls([TargetClassCost(n) for n in class_names], **kwargs)

    def normalised_class_weights(self) -> dict[str, float]:
        total = sum(t.class_weight for t in self.target_classes)
        if total <= 0:
            raise ValueError("cost_function_config: class_weight values sum to 0")
        return {t.name: t.class_weight / total for t in self.target_classes}

    def normalised_objective_weights(self) -> dict[str, dict[str, float]]:
        out = {}
        for t in self.target_classes:
            total = sum(o.initial_weight for o in t.objectives)
            if total <= 0:
                raise ValueError(
                    f"cost_function_config: target class {t.name!r}: initial_weight sum is 0"
                )
            out[t.name] = {o.name: o.initial_weight / total for o in t.objectives}
        return out


#: TAO ``training_config.regularizer.type`` values.
REGULARIZERS = ("NO_REG", "L1", "L2")


def make_regularizer(kind: str, weight: float):
    """TAO ``build_regularizer``: a Keras ``L1``/``L2`` regularizer of ``weight`` (``w*sum|W|``,
    ``w*sum W^2``, no 1/2), or None for ``NO_REG``. TAO attaches it to the kernel AND the bias of
    every convolution, heads included; batch norm is not regularised.

    >>> type(make_regularizer("L2", 0.001)).__name__, make_regularizer("NO_REG", 0.5)
    ('L2', None)
    """
    import keras

    if kind not in REGULARIZERS:
        raise ValueError(f"regularizer type must be one of {REGULARIZERS}, got {kind!r}")
    if weight < 0:
        raise ValueError(f"regularizer weight must be >= 0, got {weight}")
    if kind == "L1":
        return keras.regularizers.L1(weight)
    if kind == "L2":
        return keras.regularizers.L2(weight)
    return None


def regularization_cost(model):
    """``sum(model.losses)``: the regularizers' term TAO adds to the task cost (0.0 if none)."""
    import tensorflow as tf

    losses = list(model.losses)
    return tf.add_n(losses) if losses else tf.constant(0.0)


def weighted_bce(target, pred, foreground_weight: float):
    """Element-wise TAO weighted binary cross-entropy."""
    import tensorflow as tf

    bce = -(
        target * tf.math.log(pred + EPSILON) + (1.0 - target) * tf.math.log(1.0 - pred + EPSILON)
    )
    weights = tf.where(target > 0.5, foreground_weight, 1.0 - foreground_weight)
    return weights * bce


def component_costs(
    targets: dict, predictions: tuple, num_classes: int, config: CostConfig
) -> dict[str, dict[str, object]]:
    """Mean cost per class and objective: ``{class: {"cov": scalar, "bbox": scalar}}``.

    ``targets`` holds ``cov [B,C,h,w]``, ``bbox [B,4C,h,w]``, ``cov_norm [B,C,h,w]``;
    ``predictions`` is the model's ``(output_cov, output_bbox)``.
    """
    import tensorflow as tf

    cov_pred, bbox_pred = predictions
    out: dict[str, dict[str, object]] = {}
    for c, tc in enumerate(config.target_classes[:num_classes]):
        cov_t = targets["cov"][:, c]
        cov_p = cov_pred[:, c]
        norm = targets["cov_norm"][:, c : c + 1]
        bbox_t = targets["bbox"][:, 4 * c : 4 * c + 4]
        bbox_p = bbox_pred[:, 4 * c : 4 * c + 4]
        out[tc.name] = {
            "cov": tf.reduce_mean(weighted_bce(cov_t, cov_p, tc.coverage_foreground_weight)),
            "bbox": tf.reduce_mean(norm * tf.abs(bbox_p - bbox_t)),
        }
    return out


def total_cost(costs: dict, class_weights: dict[str, float], objective_weights) -> object:
    """``sum_c class_w * sum_o w_{c,o} * cost_{c,o}``; ``objective_weights`` may be tf variables."""
    total = 0.0
    for name, per_obj in costs.items():
        for obj, value in per_obj.items():
            total = total + class_weights[name] * objective_weights[name][obj] * value
    return total


def autoweight(
    cost_means: dict[str, dict[str, float]],
    current: dict[str, dict[str, float]],
    config: CostConfig,
) -> dict[str, dict[str, float]]:
    """New objective weights from an epoch's mean costs (TAO ``CostAutoWeightHook``).

    >>> cfg = CostConfig.default(["person"])
    >>> w = autoweight({"person": {"cov": 0.1, "bbox": 0.5}}, {"person": {"cov": .5, "bbox": .5}}, cfg)
    >>> round(w["person"]["cov"], 4), round(w["person"]["bbox"], 4)
    (0.3333, 0.6667)
    """
    updated: dict[str, dict[str, float]] = {}
    for tc in config.target_classes:
        raw = {}
        for o in tc.objectives:
            mean = float(cost_means[tc.name][o.name])
            raw[o.name] = o.weight_target / mean if mean != 0.0 else 0.0
        total = sum(raw.values())
        updated[tc.name] = {}
        for o in tc.objectives:
            if total == 0.0:
                updated[tc.name][o.name] = current[tc.name][o.name]
            else:
                w = raw[o.name] / total
                # TAO's order: max with the minimum, then min with the maximum.
                w = min(max(w, config.min_objective_weight), config.max_objective_weight)
                updated[tc.name][o.name] = float(w)
    return updated
