"""Train a Keras DetectNet_v2 on TAO TFRecords: custom loop, checkpoints, resume, metrics.

One tqdm bar covers the run (epoch, loss and mAP in its text). Each epoch logs the loss terms
and learning rate to TensorBoard (``<output>/tensorboard``), saves a checkpoint
(``tf.train.CheckpointManager``: model, optimizer, epoch, objective weights) and rewrites
``<output>/metrics.csv`` atomically. Every ``validate_every`` epochs the validation fold is
evaluated (:func:`validate`: the exact AP at IoU 0.5, INTEGRATE, as ``mAP``/``ap_<class>``, and
TAO's validation AP from the spec's clustering and evaluation configs as
``mAP_tao``/``ap_tao_<class>``).
At the end the model is saved as ``model.keras`` and as TAO-style legacy HDF5 weights
``model.h5``.

The run's settings are a :class:`cvlab.train.config.TrainConfig`.

Example:
    >>> from cvlab.train.config import TrainConfig
    >>> cfg = TrainConfig.tiny(epochs=20)  # doctest: +SKIP
    >>> result = train(cfg, "out/tfrecords/*", "out/images", "out/train")  # doctest: +SKIP
    >>> result.history[["epoch", "loss", "mAP"]]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.fileio import atomic_path
from cvlab.train.config import EVALUATION_MIN_SIZE, TrainConfig


@dataclass
class TrainResult:
    """What :func:`train` produced."""

    model: object  # keras.Model
    history: object  # pandas.DataFrame
    checkpoints: list[Path]
    model_path: Path
    weights_path: Path
    metrics_csv: Path
    weights_report: object | None = None  # cvlab.train.model.WeightsReport when pretrained


def _atomic_csv(df, path: Path) -> None:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)


def _atomic_model_save(model, path: Path) -> None:
    with atomic_path(path) as tmp:
        model.save(tmp)


def write_scalars(writer, values: dict, step: int) -> None:
    """TensorBoard scalar summaries without needing the tensorboard package (core ``tf.summary.write``)."""
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    metadata = summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
    ).SerializeToString()
    with writer.as_default(step=step):
        for key, value in values.items():
            if key != "epoch" and value is not None and np.isfinite(value):
                tf.summary.write(key, tf.constant(float(value), tf.float32), metadata=metadata)
    writer.flush()


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
    """TAO's ``compute_steps_per_epoch``: rounded up (the last step of an epoch reads on into
    the next pass of the endless, shuffled training stream).

    ``batch_size`` is the global batch (per-replica batch x replicas; TAO rounds up per GPU
    and then per processor, which is the same number).

    >>> steps_per_epoch(10, 4), steps_per_epoch(8, 4), steps_per_epoch(3, 4)
    (3, 2, 1)
    """
    return max(1, -(-int(num_examples) // int(batch_size)))


def tao_validation_frames(num_frames: int, batch_size: int) -> int:
    """How many validation frames TAO's training-time validation evaluates:
    ``num_frames // batch_size`` steps of ``batch_size`` (scripts/train.py), so the last
    ``num_frames % batch_size`` frames of a pass are left out. cvlab evaluates all of them.

    >>> tao_validation_frames(50, 4), tao_validation_frames(48, 4)
    (48, 48)
    """
    return (int(num_frames) // int(batch_size)) * int(batch_size)


def validation_due(epoch: int, num_epochs: int, period: int, first: int | None = None) -> bool:
    """TAO's validation hook: validate at ``first + k * period`` and at the last epoch, never
    when ``period`` is 0 (``first`` None: ``period``).

    >>> [e for e in range(1, 121) if validation_due(e, 120, 10, 110)]
    [110, 120]
    >>> [e for e in range(1, 8) if validation_due(e, 7, 3)], validation_due(7, 7, 0)
    ([3, 6, 7], False)
    """
    if not period:
        return False
    first = period if first is None else first
    return epoch == num_epochs or (epoch >= first and (epoch - first) % period == 0)


def count_records(files) -> int:
    """Number of examples in TFRecord ``files``."""
    import tensorflow as tf

    return int(tf.data.TFRecordDataset(list(files)).reduce(0, lambda n, _: n + 1))


def validate(
    model,
    files,
    image_root,
    config: TrainConfig,
    *,
    batch_size: int = 8,
    progress: bool = False,
):
    """Predict the validation records and evaluate them twice: exactly and as TAO reports it.

    Returns a :class:`cvlab.train.validation.ValidationResult`:

    * ``exact``: AP @ IoU 0.5, INTEGRATE (exact area), boxes in image pixels clustered by the
      inference post-processor (:func:`cvlab.train.validation.validation_postprocessor`: IR
      clustering config, low confidence threshold so AP integrates over all confidences), boxes
      filtered with the lab spec's ``evaluation_box_config`` (:data:`EVALUATION_MIN_SIZE`);
    * ``tao``: TAO's validation AP from ``config.tao_validation`` (the training spec's
      clustering and evaluation configs; default: the lab spec's), boxes in model-input pixels
      (:class:`cvlab.train.validation.TaoValidation`).

    Ground truth maps record classes through ``config.target_class_mapping`` as training does.
    """
    from tqdm.auto import tqdm

    from cvlab.formats.tfrecords import read_records
    from cvlab.train.dataset import make_dataset
    from cvlab.train.evaluate import evaluate_detections
    from cvlab.train.validation import (
        TaoValidation,
        ValidationResult,
        detections_from_outputs,
        ground_truth_detections,
        tao_detections_from_outputs,
        validation_postprocessor,
    )

    names = config.class_names
    input_size = config.model.input_size
    norm, offset = config.rasterizer.bbox_norm, config.rasterizer.offset
    post = validation_postprocessor(names, input_size, bbox_norm=norm, offset=offset)
    tao = config.tao_validation or TaoValidation.lab_default(names)
    ids = config.class_ids()
    records = read_records(files)
    ds = make_dataset(
        files,
        image_root,
        names,
        input_size,
        batch_size,
        training=False,
        rasterizer=config.rasterizer,
        class_mapping=config.target_class_mapping,
    )
    predictions, truths, tao_predictions, tao_truths = [], [], [], []
    i = 0
    for images, _ in tqdm(ds, desc="validate", leave=False, disable=not progress):
        cov, bbox = model(images, training=False)
        for c, b in zip(np.asarray(cov), np.asarray(bbox), strict=True):
            rec = records[i]
            i += 1
            size = (rec.width, rec.height)
            predictions.append(
                detections_from_outputs(c, b, names, input_size, size, postprocessor=post)
            )
            truths.append(ground_truth_detections(rec.classes, rec.boxes, size, names, size, ids))
            tao_predictions.append(
                tao_detections_from_outputs(c, b, input_size, tao, bbox_norm=norm, offset=offset)
            )
            tao_truths.append(
                ground_truth_detections(rec.classes, rec.boxes, size, names, input_size, ids)
            )
    min_height, min_width = EVALUATION_MIN_SIZE
    exact = evaluate_detections(
        predictions,
        truths,
        names,
        iou_threshold=0.5,
        mode="INTEGRATE",
        min_height=min_height,
        min_width=min_width,
    )
    return ValidationResult(exact, tao.evaluate(tao_predictions, tao_truths))


def train(
    config: TrainConfig,
    tfrecords_pattern: str,
    image_root: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    resume: bool = True,
    progress: bool = True,
    validate_every: int | None = None,
    max_steps_per_epoch: int | None = None,
    strategy=None,
) -> TrainResult:
    """Train (or resume training) and return the model, history and file paths.

    Args:
        config: the run's settings; ``epochs``/``batch_size``/``validate_every`` override it.
        tfrecords_pattern: glob of the TAO TFRecords (fold ``validation_fold`` is held out).
        image_root: directory the ``frame/id`` paths are relative to.
        output_dir: where checkpoints, ``metrics.csv``, TensorBoard logs and the model go.
        resume: continue from the latest checkpoint in ``output_dir`` if there is one.
        max_steps_per_epoch: cap on steps per epoch (quick runs and tests).
        strategy: a ``tf.distribute.Strategy``; default ``MirroredStrategy`` when more than one
            GPU is visible, else the default strategy.
    """
    import keras
    import pandas as pd
    import tensorflow as tf
    from tqdm.auto import tqdm

    from cvlab.formats.tfrecords import split_folds
    from cvlab.train.dataset import make_dataset
    from cvlab.train.losses import autoweight, component_costs, regularization_cost, total_cost
    from cvlab.train.model import build_from_config, load_weights_by_name, save_legacy_h5_weights
    from cvlab.train.run_checks import check_classes_in_records, check_resume, write_run_record
    from cvlab.train.schedule import SoftStartAnnealingSchedule, make_optimizer

    config = dataclasses.replace(
        config,
        epochs=epochs if epochs is not None else config.epochs,
        batch_size=batch_size or config.batch_size,
        validate_every=validate_every if validate_every is not None else config.validate_every,
    )
    if config.threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.threads)
            tf.config.threading.set_inter_op_parallelism_threads(config.threads)
        except RuntimeError:  # already initialised
            pass
    out = Path(output_dir)
    train_files, val_files = split_folds(tfrecords_pattern, config.validation_fold)
    num_examples = count_records(train_files)
    if num_examples < 1:
        raise ValueError(f"{tfrecords_pattern}: the training folds hold no records")
    # before anything is written: classes in the data, and a resume continues the same model
    resuming = resume and tf.train.latest_checkpoint(str(out / "checkpoints")) is not None
    check_resume(out, config, resuming)
    check_classes_in_records(train_files, config.class_names, config.target_class_mapping)
    write_run_record(out, config)
    keras.utils.set_random_seed(config.seed)

    from cvlab.train.model import distribution_strategy

    strategy = strategy or distribution_strategy()
    # batch_size is per replica (TAO's batch_size_per_gpu).
    global_batch = config.batch_size * strategy.num_replicas_in_sync
    steps = steps_per_epoch(num_examples, global_batch)
    if max_steps_per_epoch:
        steps = min(steps, max_steps_per_epoch)
    names = config.class_names
    with strategy.scope():
        model = build_from_config(len(names), config.model)
        weights_report = None
        if config.pretrained_weights:
            # TAO: backbone only unless load_graph; raises when (almost) nothing matches.
            weights_report = load_weights_by_name(
                model, config.pretrained_weights, load_graph=config.load_graph
            )
            if progress:
                print(weights_report.summary())
        schedule = SoftStartAnnealingSchedule(
            config.min_learning_rate,
            config.max_learning_rate,
            config.soft_start,
            config.annealing,
            total_steps=max(1, config.epochs * steps),
        )
        optimizer = make_optimizer(
            schedule, config.adam_epsilon, beta_1=config.adam_beta1, beta_2=config.adam_beta2
        )
        optimizer.build(model.trainable_variables)
    class_w = config.cost.normalised_class_weights()
    initial = config.cost.normalised_objective_weights()
    obj_vars = {
        c: {
            o: tf.Variable(w, trainable=False, dtype=tf.float32, name=f"w_{c}_{o}")
            for o, w in d.items()
        }
        for c, d in initial.items()
    }
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    ckpt = tf.train.Checkpoint(
        model=model,
        optimizer=optimizer,
        epoch=epoch_var,
        objective_weights={f"{c}/{o}": v for c, d in obj_vars.items() for o, v in d.items()},
    )
    manager = tf.train.CheckpointManager(ckpt, out / "checkpoints", config.max_checkpoints)
    metrics_csv = out / "metrics.csv"
    rows: list[dict] = []
    if resume and manager.latest_checkpoint:
        ckpt.restore(manager.latest_checkpoint).expect_partial()
        if metrics_csv.exists():
            rows = pd.read_csv(metrics_csv).to_dict("records")
            rows = [r for r in rows if r["epoch"] <= int(epoch_var.numpy())]
        if progress:
            print(f"resumed from {manager.latest_checkpoint} (epoch {int(epoch_var.numpy())})")

    ds = make_dataset(
        train_files,
        image_root,
        names,
        config.model.input_size,
        global_batch,
        training=True,
        augment=config.augment,
        epochs=None,
        rasterizer=config.rasterizer,
        seed=config.seed,
        cache=config.cache_images,
        class_mapping=config.target_class_mapping,
    )
    # tf.data autotuning on this endless pipeline made deleting the iterator take ~25 s per 1000
    # steps (measured on 2 CPU cores); fixed parallelism trains as fast and frees it at once.
    options = tf.data.Options()
    options.autotune.enabled = False
    ds = strategy.experimental_distribute_dataset(ds.with_options(options))
    iterator = iter(ds)

    def step_fn(images, targets):
        with tf.GradientTape() as tape:
            preds = model(images, training=True)
            costs = component_costs(targets, preds, len(names), config.cost)
            # TAO: task cost + the L1/L2 terms of every convolution (kernel and bias).
            loss = total_cost(costs, class_w, obj_vars) + regularization_cost(model)
            scaled = loss / strategy.num_replicas_in_sync
        grads = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        flat = [costs[c][o] for c in names for o in ("cov", "bbox")]
        return loss, flat

    @tf.function
    def train_step(images, targets):
        loss, flat = strategy.run(step_fn, args=(images, targets))
        mean = tf.distribute.ReduceOp.MEAN
        return strategy.reduce(mean, loss, None), [strategy.reduce(mean, f, None) for f in flat]

    writer = tf.summary.create_file_writer(str(out / "tensorboard"))
    start_epoch = int(epoch_var.numpy())
    # One bar for the whole run: the epoch in its description, loss and mAP in its postfix.
    bar = tqdm(total=(config.epochs - start_epoch) * steps, unit="step", disable=not progress)
    postfix: dict[str, str] = {}
    for epoch in range(start_epoch + 1, config.epochs + 1):
        bar.set_description(f"epoch {epoch}/{config.epochs}", refresh=False)
        sums = np.zeros(2 * len(names))
        loss_sum = 0.0
        t0 = time.perf_counter()
        for _ in range(steps):
            images, targets = next(iterator)
            loss, flat = train_step(images, targets)
            loss_sum += float(loss)
            sums += np.array([float(v) for v in flat])
            postfix["loss"] = f"{float(loss):.4f}"
            bar.set_postfix(postfix, refresh=False)
            bar.update()
        seconds = time.perf_counter() - t0
        means = sums / steps
        row = {
            "epoch": epoch,
            "step": int(optimizer.iterations.numpy()),
            "lr": float(schedule(optimizer.iterations)),
            "loss": loss_sum / steps,
            "images_per_s": steps * global_batch / seconds,
            "seconds": seconds,
        }
        cost_means = {}
        for k, c in enumerate(names):
            cost_means[c] = {"cov": means[2 * k], "bbox": means[2 * k + 1]}
            row[f"{c}_cov_loss"] = means[2 * k]
            row[f"{c}_bbox_loss"] = means[2 * k + 1]
        if config.cost.enable_autoweighting:
            current = {c: {o: float(v.numpy()) for o, v in d.items()} for c, d in obj_vars.items()}
            for c, d in autoweight(cost_means, current, config.cost).items():
                for o, w in d.items():
                    obj_vars[c][o].assign(w)
        for c, d in obj_vars.items():
            for o, v in d.items():
                row[f"w_{c}_{o}"] = float(v.numpy())
        if val_files and validation_due(
            epoch, config.epochs, config.validate_every, config.first_validation_epoch
        ):
            result = validate(model, val_files, image_root, config, batch_size=config.batch_size)
            row.update(result.history_columns())  # mAP, mAP_tao, ap_<c>, ap_tao_<c>
            postfix["mAP"] = f"{row['mAP']:.3f}"
            postfix["mAP_tao"] = f"{row['mAP_tao']:.3f}"
            bar.set_postfix(postfix)
        write_scalars(writer, row, epoch)
        rows.append(row)
        epoch_var.assign(epoch)
        if epoch % config.checkpoint_interval == 0 or epoch == config.epochs:
            manager.save(checkpoint_number=epoch)
        _atomic_csv(pd.DataFrame(rows), metrics_csv)
    bar.close()

    history = pd.DataFrame(rows)
    model_path = out / "model.keras"
    weights_path = out / "model.h5"
    _atomic_model_save(model, model_path)
    save_legacy_h5_weights(model, str(weights_path))
    return TrainResult(
        model=model,
        history=history,
        checkpoints=[Path(p) for p in manager.checkpoints],
        model_path=model_path,
        weights_path=weights_path,
        metrics_csv=metrics_csv,
        weights_report=weights_report,
    )
