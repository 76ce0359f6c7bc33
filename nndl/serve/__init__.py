"""Your own handwriting: predicting digits in images, reading whole numbers, and a page to draw on.

    predict   Classifier (any nndl model taking 28x28 images), Prediction, predict()
    read      reading a number written in one image: segmentation scored by the classifier
    app       the web page and JSON API of ``nndl serve`` (needs the ``web`` extra)

The preparation of an image (MNIST's own normalisation) is in
:mod:`nndl.data.images`. Importing this package imports nothing heavy:
PyTorch is imported only to load a convolutional model, matplotlib only to
draw a figure, the web framework only by ``app``.
"""
