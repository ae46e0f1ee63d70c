"""The core: images, fetching, image keys, classifiers, the classification cache, ground truth, datasets."""
