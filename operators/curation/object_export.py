"""Export of the clean and the suspect objects as detection datasets.

Used by ``export_curated_dataset`` on a patches view: each part (a view of
objects) is exported as the images that hold its objects, with only those
objects in the label field (FiftyOne's ``select_labels``), in COCO, FiftyOne
image detection or FiftyOne dataset format; ``original`` exports the classes
as they were before any correction (``label_original``) through a view
stage, nothing is written to the dataset.
"""

import fiftyone as fo
from fiftyone import ViewField as F

from ...store.corrections import OBJECT_ORIGINAL

OBJECT_FORMATS = {
    "coco_detection": "COCODetectionDataset",
    "fiftyone_image_detection": "FiftyOneImageDetectionDataset",
    "fiftyone_dataset": "FiftyOneDataset",
}


def export_objects(part, target, fmt, label_field, use_original=False):
    """Exports the objects of the patches view ``part`` into ``target``.

    Returns:
        ``(num_objects, num_images)``
    """
    ids = part.values("id")
    if not ids:
        return 0, 0
    dataset = part._root_dataset
    images = dataset.select_labels(ids=ids, fields=label_field)
    if use_original and dataset.get_field(
        "%s.detections.%s" % (label_field, OBJECT_ORIGINAL)
    ) is not None:
        images = images.set_field(
            label_field + ".detections.label",
            F(OBJECT_ORIGINAL).exists().if_else(F(OBJECT_ORIGINAL), F("label")),
        )
    kwargs = dict(export_dir=target, dataset_type=getattr(fo.types, OBJECT_FORMATS[fmt]))
    if fmt != "fiftyone_dataset":
        kwargs["label_field"] = label_field
        # JSON formats: leave out vectors and nested labels (embeddings,
        # suggested_label...); scores and classes stay as attributes
        nested = _nested_attributes(dataset, label_field)
        if nested:
            images = images.exclude_fields(nested)
    images.export(**kwargs)
    return len(ids), images.count()


def _nested_attributes(dataset, label_field):
    import fiftyone.core.fields as fof

    prefix = "%s.detections." % label_field
    out = []
    for path, field_ in dataset.get_field_schema(flat=True).items():
        rest = path[len(prefix):]
        if not path.startswith(prefix) or "." in rest or rest in ("attributes", "mask"):
            continue
        if isinstance(field_, (fof.EmbeddedDocumentField, fof.VectorField, fof.ArrayField)):
            out.append(path)
    return out
