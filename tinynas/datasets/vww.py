"""Visual Wake Words: person (1) / no person (0), resized to ``image_size`` (96 by default).

Two layouts:

* folders, as MLPerf Tiny's ``vw_coco2014_96``: ``root/person/*.jpg`` and ``root/non_person/*.jpg``;
* COCO images plus the VWW annotation JSON that tensorflow/models' ``build_visualwakewords_data.py`` writes
  (``{"images": [COCO image dicts], "annotations": {"<image id>": {"label": 0|1, "objects": [...]}}}``):
  ``annotations`` names the JSON (relative to ``root``) or maps ``train`` / ``val`` / ``test`` to one JSON each
  (e.g. ``{train: instances_train.json, test: instances_val.json}`` for the minival test set); ``images``
  lists the folders holding the ``file_name`` images (default: ``root``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from tinynas.datasets.base import TEST, UNASSIGNED, VAL, root_dir
from tinynas.datasets.image_folder import image_source, list_images
from tinynas.errors import ConfigError

CLASSES = ("non_person", "person")
MARKS = {"train": UNASSIGNED, "val": VAL, "test": TEST}
GET = ("Build it yourself from COCO 2014 with tensorflow/models' research/slim/datasets/build_visualwakewords_data.py, "
       "or use MLPerf Tiny's vw_coco2014_96 folders.")


def _annotated(path: Path, name: str) -> list[tuple[str, int]]:
    """(file_name, label) per image of a VWW annotation JSON."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"dataset {name}: annotations file {path} does not exist. {GET}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"dataset {name}: {path} is not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or "annotations" not in data:
        raise ConfigError(f"dataset {name}: {path} lacks 'images' (a list) and 'annotations'; expected a VWW "
                          "annotation file")
    ann = data["annotations"]
    if isinstance(ann, list):  # a flat list of {"image_id", "label"} records
        ann = {str(a.get("image_id")): a for a in ann}
    out = []
    for image in data["images"]:
        a = ann.get(str(image.get("id")))
        if not isinstance(a, dict) or a.get("label") not in (0, 1) or "file_name" not in image:
            raise ConfigError(f"dataset {name}: {path}: image id {image.get('id')!r} has no file_name or no "
                              f"annotation with label 0 or 1")
        out.append((image["file_name"], int(a["label"])))
    return out


def _coco(cfg, root: Path):
    name, spec = cfg["name"], cfg["annotations"]
    files = dict(spec) if hasattr(spec, "items") else {"train": spec}
    unknown = sorted(set(files) - set(MARKS))
    if unknown:
        raise ConfigError(f"dataset {name}: annotations has keys {unknown}; allowed: train, val, test")
    images = cfg.get("images") or ["."]
    folders = [root / f for f in ([images] if isinstance(images, str) else images)]
    where: dict[str, Path] = {}
    for folder in reversed(folders):  # the first folder listed wins
        if not folder.is_dir():
            raise ConfigError(f"dataset {name}: images folder {folder} does not exist. {GET}")
        where.update((p.name, p) for p in list_images(folder))
    paths, names, marks = [], [], []
    for split, file in files.items():
        json_path = root / file
        for file_name, label in _annotated(json_path, name):
            if file_name not in where:
                raise ConfigError(f"dataset {name}: {json_path} lists {file_name}, which is in none of the image "
                                  f"folders {[str(f) for f in folders]}")
            paths.append(where[file_name])
            names.append(CLASSES[label])
            marks.append(MARKS[split])
    return paths, names, np.array(marks, np.int8)


def load(cfg):
    name = cfg["name"]
    root = root_dir(cfg, "person/ and non_person/ image folders, or COCO images and a VWW annotation JSON "
                    "(dataset.annotations)", GET)
    if cfg.get("annotations"):
        paths, names, marks = _coco(cfg, root)
    else:
        missing = [c for c in CLASSES if not (root / c).is_dir()]
        if missing:
            raise ConfigError(f"dataset {name}: {root} has no {' or '.join(c + '/' for c in missing)} folder; "
                              f"expected person/ and non_person/ image folders, or set dataset.annotations to a "
                              f"VWW annotation JSON. {GET}")
        per_class = {c: list_images(root / c) for c in CLASSES}
        paths = per_class["non_person"] + per_class["person"]
        names = ["non_person"] * len(per_class["non_person"]) + ["person"] * len(per_class["person"])
        marks = None
    if not paths:
        raise ConfigError(f"dataset {name}: {root} holds no images. {GET}")
    return image_source(cfg, paths, names, CLASSES, marks, default_size=96)
