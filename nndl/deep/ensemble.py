"""Several networks deciding together: the book's vote, and the average of their probabilities.

Chapter 6 ends its ladder with five networks of the same design, trained from
different random starts, voting on each test image (99.67%). Networks that
are about equally good still make different mistakes, so a vote corrects
some of them.

The members need not be in one place: each run can write its predictions on
the validation and test images (``nndl conv --predictions``, a small file),
and the vote is computed from those files, without the networks or the
data -- members trained on different machines, or at different times, are
collected by copying their files together.
"""

from nndl.deep._torch import torch

__all__ = ["majority_vote", "average_probabilities", "evaluate_ensemble", "score", "check_members",
           "save_predictions", "read_predictions", "Predictions", "fingerprint", "PREDICTIONS_FORMAT",
           "PREDICTIONS_VERSION"]


def majority_vote(log_probabilities):
    """The class most members choose for each example.

    Parameters
    ----------
    log_probabilities : list of tensor (n, k)
        One per member.

    Returns
    -------
    tensor (n,) int64
        Ties between classes with equally many votes go to the one of
        highest mean probability among them.
    """
    stacked = torch.stack([lp.float() for lp in log_probabilities])           # (members, n, k)
    k = stacked.shape[2]
    votes = torch.nn.functional.one_hot(stacked.argmax(dim=2), k).sum(dim=0)  # (n, k) votes per class
    mean = stacked.exp().mean(dim=0)                                          # (n, k), each row in [0, 1]
    # Votes first; the mean probability (< 1) only decides between equal counts.
    return (votes.float() + 0.5 * mean * (votes == votes.max(dim=1, keepdim=True).values)).argmax(dim=1)


def average_probabilities(log_probabilities):
    """The class of highest mean probability over the members: tensor (n,) int64."""
    return torch.stack([lp.float().exp() for lp in log_probabilities]).mean(dim=0).argmax(dim=1)


def evaluate_ensemble(nets, images, labels):
    """Accuracy of every member, of their vote and of their averaged probabilities.

    Parameters
    ----------
    nets : list of ConvNetwork
    images : array or tensor (n, 784) or (n, 1, 28, 28)
    labels : array or tensor (n,)

    Returns
    -------
    dict with "members" (list of float), "vote" and "average" (float), "n" (int)
    """
    return score([net.log_probabilities(images).cpu() for net in nets], labels)


# ---------------------------------------------------------------------------
# Members' saved predictions: vote without the networks (or the data)
# ---------------------------------------------------------------------------

#: The file ``nndl conv --predictions`` writes: a member's log-probabilities on the validation and test images.
PREDICTIONS_FORMAT = "nndl-predictions"
PREDICTIONS_VERSION = 1


def fingerprint(images, labels):
    """sha256 of the images (as float32) and labels (as int64): which data a member's predictions are of."""
    import hashlib

    import numpy as np
    images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    labels = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    digest = hashlib.sha256(np.ascontiguousarray(images, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(labels, dtype=np.int64).tobytes())
    return digest.hexdigest()


def save_predictions(path, net, splits, metadata=None):
    """Write ``net``'s log-probabilities on each split, with its labels, atomically; returns the path.

    Parameters
    ----------
    net : ConvNetwork
    splits : dict of str -> (images, labels)
        E.g. {"validation": (...), "test": (...)}; images as ``net`` takes them, labels (n,).
    metadata : dict, optional
        JSON-ready notes (the run, its seed, its accuracy).

    The file (PyTorch zip of tensors and JSON text, read with weights_only)
    holds ``format``, ``version``, ``header`` (JSON: network, metadata, and
    per split its size and ``fingerprint``), ``log_probabilities`` and
    ``labels`` (dicts by split name; float32 (n, k) and int64 (n,)).
    """
    import json

    from nndl.deep.checkpoint import _write
    outputs, labels, described = {}, {}, {}
    for name, (images, y) in splits.items():
        y = torch.as_tensor(y).to(torch.int64).cpu()
        outputs[name] = net.log_probabilities(images).float().cpu()
        labels[name] = y
        described[name] = {"n": int(y.shape[0]), "fingerprint": fingerprint(images, y)}
    header = {"network": net.config.to_dict(), "metadata": metadata or {}, "splits": described}
    return _write(path, {"format": PREDICTIONS_FORMAT, "version": PREDICTIONS_VERSION, "header": json.dumps(header),
                         "log_probabilities": outputs, "labels": labels})


class Predictions:
    """One member's saved predictions (see ``save_predictions``): ``log_probabilities[split]``,
    ``labels[split]``, ``fingerprints[split]``, ``metadata``, ``source``."""

    def __init__(self, source, log_probabilities, labels, fingerprints, metadata):
        self.source, self.log_probabilities, self.labels = source, log_probabilities, labels
        self.fingerprints, self.metadata = fingerprints, metadata

    def split(self, name):
        """(log-probabilities (n, k), labels (n,)) of one split; ModelFileError if the file has none."""
        from nndl.errors import ModelFileError
        if name not in self.log_probabilities:
            raise ModelFileError(f"{self.source} holds no {name} predictions (it has: "
                                 f"{', '.join(sorted(self.log_probabilities)) or 'none'})")
        return self.log_probabilities[name], self.labels[name]


def read_predictions(path, content):
    """A Predictions from the dict ``nndl.deep.checkpoint.load_tensors(path)`` read, every field checked."""
    from nndl.errors import ModelFileError
    from nndl.files.header import check_header, parse_json
    source = str(path)
    check_header({"format": content.get("format"), "version": content.get("version")}, PREDICTIONS_FORMAT,
                 PREDICTIONS_VERSION, source, error=ModelFileError)
    header = content.get("header")
    header = parse_json(header, source, error=ModelFileError) if isinstance(header, str) else None
    outputs, labels = content.get("log_probabilities"), content.get("labels")
    if not (isinstance(header, dict) and isinstance(header.get("splits"), dict) and isinstance(outputs, dict)
            and isinstance(labels, dict) and isinstance(header.get("metadata", {}), dict)):
        raise ModelFileError(f"{source}: a predictions file needs a header with its splits, log_probabilities "
                             "and labels")
    fingerprints = {}
    for name, described in header["splits"].items():
        lp, y = outputs.get(name), labels.get(name)
        if not (isinstance(described, dict) and isinstance(lp, torch.Tensor) and isinstance(y, torch.Tensor)
                and lp.ndim == 2 and lp.is_floating_point() and y.ndim == 1 and not y.is_floating_point()
                and lp.shape[0] == y.shape[0] == described.get("n") and not bool(torch.isnan(lp).any())
                and bool((lp <= 1e-6).all())
                and bool(((y >= 0) & (y < lp.shape[1])).all()) and isinstance(described.get("fingerprint"), str)):
            raise ModelFileError(f"{source}: the {name} predictions are damaged (they must be log-probabilities "
                                 "(n, k), labels (n,) in 0..k-1 and the header's n and fingerprint)")
        fingerprints[name] = described["fingerprint"]
    return Predictions(source, {k: outputs[k] for k in fingerprints}, {k: labels[k] for k in fingerprints},
                       fingerprints, header.get("metadata", {}))


def check_members(outputs, labels, names=None):
    """Check that members' log-probabilities can vote together on ``labels`` (InputError naming the files).

    Every member must give one row per label (the same images) and the same number of classes, and the
    labels must be classes of theirs.

    Parameters
    ----------
    outputs : list of tensor (n, k)
    labels : tensor or array (n,)
    names : list of str, optional
        The members' files, for messages (default: "member 1", "member 2", ...).
    """
    from nndl.errors import InputError
    names = [str(n) for n in names] if names is not None else [f"member {i + 1}" for i in range(len(outputs))]
    if not outputs:
        raise InputError("an ensemble needs at least one member")
    labels = torch.as_tensor(labels)
    for name, lp in zip(names, outputs):
        if not isinstance(lp, torch.Tensor) or lp.ndim != 2:
            raise InputError(f"{name}: its predictions are not a table of log-probabilities (n, k)")
    rows = {name: int(lp.shape[0]) for name, lp in zip(names, outputs)}
    if len(set(rows.values())) > 1 or labels.ndim != 1 or int(labels.shape[0]) not in rows.values():
        counts = ", ".join(f"{name}: {n}" for name, n in rows.items())
        raise InputError(f"the members predict different numbers of images ({counts}; labels: "
                         f"{int(labels.shape[0]) if labels.ndim == 1 else 'not a list'}): the members of an "
                         "ensemble must be evaluated on the same images")
    classes = {name: int(lp.shape[1]) for name, lp in zip(names, outputs)}
    if len(set(classes.values())) > 1:
        counts = ", ".join(f"{name}: {k}" for name, k in classes.items())
        raise InputError(f"the members have different numbers of classes ({counts}): they cannot vote together")
    k = next(iter(classes.values()))
    if labels.numel() and (labels.is_floating_point() or int(labels.min()) < 0 or int(labels.max()) >= k):
        raise InputError(f"the labels are not classes 0..{k - 1} of the members ({', '.join(names)})")


def score(outputs, labels, names=None):
    """Accuracy of every member, of the vote and of the average, from their log-probabilities (n, k) on ``labels``.

    ``names``: the members' files, named when they cannot vote together (see :func:`check_members`).
    """
    labels = torch.as_tensor(labels).cpu()
    check_members(outputs, labels, names)
    outputs = [lp.cpu() for lp in outputs]
    members = [float((lp.argmax(dim=1) == labels).float().mean()) for lp in outputs]
    return {"members": members, "vote": float((majority_vote(outputs) == labels).float().mean()),
            "average": float((average_probabilities(outputs) == labels).float().mean()), "n": int(labels.shape[0])}
