"""The convolutional networks of chapter 6, on PyTorch.

PyTorch does the convolutions and the gradients (autograd); the book's
choices -- valid convolution, max-pooling, the activation after pooling,
network3's weight initialisation and dropout, its L2 term -- are spelled out
in ``layers`` and ``network``. One module per job:

    config      ConvNetConfig: a network layer by layer, pure data (no PyTorch needed)
    presets     the book's chapter 6 networks by name (no PyTorch needed)
    optimizer   BookSGD: the book's update rule as a torch.optim.Optimizer
    device      which device to train on ("auto", "cpu", "cuda"), CPU threads and kernels
    layers      ConvPool, FullyConnected, Softmax: torch.nn modules that own their parameters
    network     ConvNetwork: the layers in order, the cost, accuracy and prediction
    data        MNIST as tensors on the training device; the expanded set
    augment     shifts, rotations and elastic distortions, on the device
    train       the SGD loop: History, best-validation epoch, schedule, checkpoints, resume
    multi       several networks of one architecture trained at once (seeds, ensemble members): train_many
    checkpoint  model and checkpoint files (no pickle), validated against their architecture
    ensemble    several networks voting or averaging their probabilities (from models or saved predictions)
    distributed several processes training one network (torchrun, gloo/nccl): World, init_from_environment

PyTorch is an optional dependency (``pip install 'nndl[deep]'``): ``import
nndl``, chapters 1-3, ``config`` and ``presets`` never import it; every module
here that needs it says how to install it when it is missing (``_torch``).
"""
