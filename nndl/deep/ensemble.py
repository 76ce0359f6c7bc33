"""Several networks deciding together: the book's vote, and the average of their probabilities.

Chapter 6 ends its ladder with five networks of the same design, trained from
different random starts, voting on each test image (99.67%). Networks that
are about equally good still make different mistakes, so a vote corrects
some of them.
"""

import torch

__all__ = ["majority_vote", "average_probabilities", "evaluate_ensemble"]


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
    labels = torch.as_tensor(labels)
    outputs = [net.log_probabilities(images).cpu() for net in nets]
    members = [float((lp.argmax(dim=1) == labels).float().mean()) for lp in outputs]
    return {"members": members, "vote": float((majority_vote(outputs) == labels).float().mean()),
            "average": float((average_probabilities(outputs) == labels).float().mean()), "n": int(labels.shape[0])}
