"""TAO's ``soft_start_annealing_schedule`` as a Keras ``LearningRateSchedule``.

With ``progress = step / total_steps``: the rate rises exponentially from ``min_lr`` to
``max_lr`` during ``[0, soft_start)``, stays at ``max_lr`` until ``annealing``, then decays
exponentially back to ``min_lr`` at ``progress = 1``.

Example:
    >>> s = SoftStartAnnealingSchedule(1e-6, 1e-4, soft_start=0.1, annealing=0.5, total_steps=100)
    >>> [round(float(s(i)), 8) for i in (0, 5, 10, 50, 75, 100)]
    [1e-06, 1e-05, 0.0001, 0.0001, 1e-05, 1e-06]
"""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="cvlab")
class SoftStartAnnealingSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Soft start (exponential ramp up) + plateau + exponential annealing."""

    def __init__(
        self,
        min_lr: float,
        max_lr: float,
        soft_start: float,
        annealing: float,
        total_steps: int,
    ) -> None:
        if not 0.0 <= soft_start <= annealing <= 1.0:
            raise ValueError(
                "soft_start_annealing_schedule: need 0 <= soft_start <= annealing <= 1, got "
                f"soft_start={soft_start}, annealing={annealing}"
            )
        if not 0.0 < min_lr <= max_lr:
            raise ValueError(
                f"soft_start_annealing_schedule: need 0 < min_learning_rate <= "
                f"max_learning_rate, got {min_lr}, {max_lr}"
            )
        if total_steps < 1:
            raise ValueError("soft_start_annealing_schedule: total_steps must be >= 1")
        self.min_lr = float(min_lr)
        self.max_lr = float(max_lr)
        self.soft_start = float(soft_start)
        self.annealing = float(annealing)
        self.total_steps = int(total_steps)

    def __call__(self, step):
        ops = keras.ops
        progress = ops.minimum(ops.cast(step, "float32") / float(self.total_steps), 1.0)
        log_min = ops.log(self.min_lr)
        log_max = ops.log(self.max_lr)
        ramp = progress / max(self.soft_start, 1e-12)
        anneal = (progress - self.annealing) / max(1.0 - self.annealing, 1e-12)
        up = ops.exp(log_min + (log_max - log_min) * ramp)
        down = ops.exp(log_max + (log_min - log_max) * anneal)
        lr = ops.where(progress < self.soft_start, up, self.max_lr)
        return ops.where(progress > self.annealing, down, lr)

    def get_config(self) -> dict:
        return {
            "min_lr": self.min_lr,
            "max_lr": self.max_lr,
            "soft_start": self.soft_start,
            "annealing": self.annealing,
            "total_steps": self.total_steps,
        }


def make_optimizer(
    schedule: SoftStartAnnealingSchedule,
    epsilon: float = 1e-8,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
):
    """Adam on the given schedule with the spec's ``optimizer.adam`` epsilon and betas (defaults:
    TAO's default spec). Keras' Adam uses TF1's "epsilon hat" form as TAO's
    ``tf.train.AdamOptimizer``: ``lr_t = lr*sqrt(1-b2^t)/(1-b1^t)``, ``w -= lr_t*m/(sqrt(v)+eps)``."""
    return keras.optimizers.Adam(
        learning_rate=schedule, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon
    )
