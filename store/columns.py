"""Columns of values as FiftyOne stores them: the types under every write.

- :class:`VectorDecoder`: stored vectors (zlib ``.npy`` bytes or lists) to
  numpy, each distinct header parsed once;
- :class:`ClassificationColumn`: one ``fo.Classification`` per row, built
  only when sliced or converted to stored documents;
- :func:`infer_field`, :func:`field_kind`: the FiftyOne field a column
  needs, and its name in error messages;
- :func:`to_mongo`, :func:`stored_column`, :func:`to_python`: values as
  stored; :data:`ABSENT` marks an attribute to remove;
- :func:`declare_fields`: declares new fields on a dataset (top-level or
  under a label list).
"""

import datetime
import zlib

import numpy as np

import fiftyone as fo
import fiftyone.core.fields as fof


def plain(value):
    """A stored scalar as ``values()`` returns it (ObjectIds as strings)."""
    from bson import ObjectId

    return str(value) if isinstance(value, ObjectId) else value


class VectorDecoder:
    """Decodes stored vectors into flat numpy arrays.

    FiftyOne stores a ``VectorField``/``ArrayField`` value (and a numpy
    array set as a dynamic attribute) as zlib-compressed ``.npy`` bytes;
    lists of numbers are stored as BSON arrays. ``np.load`` parses the
    ``.npy`` header of every vector (a third of the read time at 1M rows);
    here each distinct header is parsed once and the data is viewed in
    place. Anything unusual (Fortran order, object dtype) goes through
    ``np.load``.
    """

    def __init__(self):
        self._headers = {}

    def __call__(self, raw):
        if raw is None:
            return None
        if not isinstance(raw, (bytes, bytearray)):
            return np.asarray(raw, dtype=np.float64).ravel()
        buf = zlib.decompress(raw)
        major = buf[6]
        size_bytes = 2 if major == 1 else 4
        start = 8 + size_bytes
        header_len = int.from_bytes(buf[8:start], "little")
        header = buf[start:start + header_len]
        layout = self._headers.get(header)
        if layout is None:
            layout = self._headers[header] = _npy_layout(header)
        if layout is False:
            import io

            return np.load(io.BytesIO(buf)).ravel()
        dtype, count = layout
        return np.frombuffer(buf, dtype=dtype, count=count, offset=start + header_len)


def _npy_layout(header):
    """``(dtype, count)`` of a C-ordered numeric ``.npy`` header, else False."""
    import ast

    info = ast.literal_eval(header.decode("latin1"))
    dtype = np.dtype(info["descr"])
    if info.get("fortran_order") or dtype.kind not in "fiub":
        return False
    return dtype, int(np.prod(info["shape"], dtype=np.int64))


class ClassificationColumn:
    """One ``fo.Classification`` per sample, built only when sliced.

    :func:`write_sample_fields` converts it batch by batch straight to
    stored documents (:meth:`to_mongo`), so 1M suggestions never exist as
    1M label objects. Rows whose class index is negative are None (no
    suggestion).

    Args:
        classes: class names
        index: int array (n,) of class indices (-1: None)
        confidence: float array (n,)
    """

    def __init__(self, classes, index, confidence):
        self.classes = list(classes)
        self.index = np.asarray(index)
        self.confidence = np.asarray(confidence, dtype=float)

    def __len__(self):
        return len(self.index)

    def __getitem__(self, rows):
        if isinstance(rows, slice):
            return [self[i] for i in range(*rows.indices(len(self)))]
        c = int(self.index[rows])
        if c < 0:
            return None
        return fo.Classification(label=self.classes[c], confidence=float(self.confidence[rows]))

    def to_mongo(self, start, stop):
        """Rows ``start:stop`` as stored documents (what ``fo.Classification.to_mongo()`` gives)."""
        from bson import ObjectId

        out = []
        for c, conf in zip(self.index[start:stop].tolist(), self.confidence[start:stop].tolist()):
            if c < 0:
                out.append(None)
                continue
            out.append({
                "_id": ObjectId(), "_cls": "Classification", "tags": [],
                "label": self.classes[c], "confidence": None if conf != conf else conf,
            })
        return out


def stored_column(field, values, start, stop):
    """Values ``start:stop`` of an output column as stored in the database."""
    if isinstance(values, ClassificationColumn):
        return values.to_mongo(start, stop)
    return to_mongo(field, values[start:stop])


def field_kind(field):
    """A field's type as shown in error messages (numbers are one kind)."""
    doc_type = getattr(field, "document_type", None)
    name = type(field).__name__
    if name in ("IntField", "FloatField"):
        name = "numeric"
    return "%s(%s)" % (name, doc_type.__name__) if doc_type else name


def to_python(values):
    """A column as plain Python values (NaN -> None)."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind == "f":
            out = values.astype(float).tolist()
            for i in np.flatnonzero(np.isnan(values)).tolist():
                out[i] = None
            return out
        if kind in "iu":
            return values.astype(np.int64).tolist()
        if kind == "b":
            return values.astype(bool).tolist()
        return values.tolist()
    return list(values)


def infer_field(values):
    """A FiftyOne field instance for a column of output values."""
    if isinstance(values, ClassificationColumn):
        return fof.EmbeddedDocumentField(fo.Classification)
    if isinstance(values, np.ndarray) and values.dtype != object and values.ndim == 1:
        kind = values.dtype.kind
        if kind == "b":
            return fof.BooleanField()
        if kind in "iu":
            return fof.IntField()
        if kind == "f":
            return fof.FloatField()
        if kind in "US":
            return fof.StringField()
    first = next((v for v in values if v is not None and v is not ABSENT), None)
    if isinstance(first, fo.DynamicEmbeddedDocument):  # labels, review records
        return fof.EmbeddedDocumentField(type(first))
    if isinstance(first, np.ndarray):
        return fof.VectorField()
    if isinstance(first, (bool, np.bool_)):
        return fof.BooleanField()
    if isinstance(first, (int, np.integer)):
        return fof.IntField()
    if isinstance(first, (float, np.floating)):
        return fof.FloatField()
    if isinstance(first, str):
        return fof.StringField()
    if isinstance(first, datetime.datetime):
        return fof.DateTimeField()
    return None


def to_mongo(field, values):
    """A column of values as stored: documents for labels and vectors,
    plain Python scalars otherwise, :data:`ABSENT` kept as is."""
    if isinstance(field, (fof.EmbeddedDocumentField, fof.VectorField)):
        return [v if v is None or v is ABSENT else field.to_mongo(v) for v in values]
    if any(v is ABSENT for v in values):
        return [v if v is ABSENT else to_python([v])[0] for v in values]
    return to_python(values)


class _Absent:
    def __repr__(self):
        return "ABSENT"


#: a value meaning "no such attribute": the attribute is removed from the
#: object (not set to None), so an undo can give back the document as it was
ABSENT = _Absent()


def declare_fields(dataset, prefix, fields):
    """Declares each new field ``{name: field}`` at ``<prefix>.<name>``
    (top-level when ``prefix`` is empty); fields of type None (all values
    None) and existing ones are left alone."""
    for name, new in fields.items():
        path = prefix + "." + name if prefix else name
        if new is None or dataset.get_field(path) is not None:
            continue
        kwargs = {}
        if isinstance(new, fof.EmbeddedDocumentField):
            kwargs["embedded_doc_type"] = new.document_type
        dataset.add_sample_field(path, type(new), **kwargs)
