"""Your own handwriting: an image of one's own, prepared as MNIST's digits were, then read by a network.

    prepare   any image -> 28x28, white ink on black, centred by its centre of mass (MNIST's normalisation)
    predict   Classifier (any nndl model taking 28x28 images), Prediction, predict()
    read      reading a number written in one image: segmentation scored by the classifier

Used by ``nndl predict``, ``nndl read``, :func:`nndl.predict` and the web page
of :mod:`nndl.serve`. Importing this package imports nothing heavy: PyTorch
is imported only to load a convolutional model, matplotlib only to draw a
figure.
"""
