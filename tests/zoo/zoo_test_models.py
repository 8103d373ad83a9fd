"""Entrypoints of the test model zoo manifest (``tests/zoo/manifest.json``).

Tests cannot download weights, so the manifest's models build small
torchvision networks with seeded random weights; FiftyOne loads them through
its real zoo path (``foz.load_zoo_model`` -> ``TorchImageModel``), as it
would a downloaded model.
"""


def random_resnet18(seed=0):
    """torchvision's resnet18 with random weights drawn from ``seed``."""
    import torch
    import torchvision

    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        return torchvision.models.resnet18(weights=None)
