"""Label cleaning with the video's time: a person's box persists from frame to frame.

Per-frame teacher boxes are linked into tracks (greedy by IoU with each track's last box, a
track waiting ``max_gap`` frames for its person to reappear); then one-frame flickers and weak
tracks are dropped (fewer than ``min_length`` detections, or a best score under
``min_track_score``) and the frames a kept track skipped are filled by linear interpolation
between its boxes on either side. Everything is plain numpy: the same rules label a short
clip in a test and the whole video.

Example:
    >>> boxes = [np.array([[10, 10, 20, 40.0]]), np.zeros((0, 4)), np.array([[14, 10, 24, 40.0]]),
    ...          np.array([[16, 10, 26, 40.0], [100, 100, 110, 130]]), np.array([[18, 10, 28, 40.0]])]
    >>> scores = [np.array([0.9]), np.zeros(0), np.array([0.9]), np.array([0.9, 0.9]), np.array([0.9])]
    >>> clean = clean_tracks(boxes, scores, TrackSettings(min_length=3, max_gap=2))
    >>> [len(b) for b in clean.boxes], clean.boxes[1].tolist(), clean.filled, clean.dropped
    ([1, 1, 1, 1, 1], [[12.0, 10.0, 22.0, 40.0]], 1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from cvlab.datasets.teachers import box_iou_matrix


@dataclass(frozen=True)
class TrackSettings:
    """How boxes become tracks: link at ``link_iou``; a track waits ``max_gap`` frames; kept
    with ``min_length`` detections or more and a best score of ``min_track_score`` or more."""

    link_iou: float = 0.3
    max_gap: int = 4
    min_length: int = 3
    min_track_score: float = 0.5


@dataclass
class Track:
    """One person over time: ``frames`` (positions in the clip), ``boxes`` and ``scores``."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


@dataclass
class CleanLabels:
    """The cleaned boxes per frame (``boxes``, ``track_ids``) and what cleaning did:
    ``dropped`` detections (flickers and weak tracks) and ``filled`` gap frames."""

    boxes: list[np.ndarray]
    track_ids: list[np.ndarray]
    tracks: int
    dropped: int
    filled: int


def link_tracks(
    boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray], settings: TrackSettings
) -> list[Track]:
    """Greedy IoU linking, frame by frame (highest IoU pairs first)."""
    tracks: list[Track] = []
    active: list[int] = []
    for t, (frame_boxes, frame_scores) in enumerate(zip(boxes, scores, strict=True)):
        frame_boxes = np.asarray(frame_boxes, np.float64).reshape(-1, 4)
        active = [k for k in active if t - tracks[k].frames[-1] <= settings.max_gap + 1]
        taken: set[int] = set()
        if active and len(frame_boxes):
            last = np.array([tracks[k].boxes[-1] for k in active])
            iou = box_iou_matrix(last, frame_boxes)
            for flat in np.argsort(-iou, axis=None):
                a, b = np.unravel_index(flat, iou.shape)
                if iou[a, b] < settings.link_iou:
                    break
                k = active[a]
                if b in taken or tracks[k].frames[-1] == t:
                    continue
                tracks[k].frames.append(t)
                tracks[k].boxes.append(frame_boxes[b])
                tracks[k].scores.append(float(frame_scores[b]))
                taken.add(int(b))
        for b in range(len(frame_boxes)):
            if b not in taken:
                tracks.append(Track([t], [frame_boxes[b]], [float(frame_scores[b])]))
                active.append(len(tracks) - 1)
    return tracks


def clean_tracks(
    boxes: Sequence[np.ndarray],
    scores: Sequence[np.ndarray],
    settings: TrackSettings = TrackSettings(),
) -> CleanLabels:
    """Per-frame boxes after linking, dropping flickers and weak tracks, and filling gaps."""
    n = len(boxes)
    out: list[list[np.ndarray]] = [[] for _ in range(n)]
    ids: list[list[int]] = [[] for _ in range(n)]
    dropped = filled = kept = 0
    for track in link_tracks(boxes, scores, settings):
        if len(track.frames) < settings.min_length or max(track.scores) < settings.min_track_score:
            dropped += len(track.frames)
            continue
        steps = list(zip(track.frames, track.boxes, strict=True))
        for (t0, b0), (t1, b1) in zip(steps, steps[1:], strict=False):
            out[t0].append(b0)
            ids[t0].append(kept)
            for t in range(t0 + 1, t1):  # a gap: interpolate
                out[t].append(b0 + (b1 - b0) * (t - t0) / (t1 - t0))
                ids[t].append(kept)
                filled += 1
        out[track.frames[-1]].append(track.boxes[-1])
        ids[track.frames[-1]].append(kept)
        kept += 1
    return CleanLabels(
        [np.array(b, np.float64).reshape(-1, 4) for b in out],
        [np.array(i, np.int64) for i in ids],
        kept,
        dropped,
        filled,
    )
