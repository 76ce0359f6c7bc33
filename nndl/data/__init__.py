"""The data: idx files, MNIST (found, verified, split as the book does), expanded training sets."""
