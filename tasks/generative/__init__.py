"""Generative models on the classification datamodules: VAE, GAN (DCGAN) and PixelCNN.

Each module registers its task in ``visionflow.registry.TASKS`` (``vae``, ``gan``, ``pixelcnn``)
with ``batch=ImageClassificationBatch``; :mod:`.base` holds what they share.
"""

from visionflow.tasks.generative import base, features, gan, pixelcnn, vae
from visionflow.tasks.generative.gan import GANTask
from visionflow.tasks.generative.pixelcnn import PixelCNNTask
from visionflow.tasks.generative.vae import VAETask

__all__ = ["GANTask", "PixelCNNTask", "VAETask", "base", "features", "gan", "pixelcnn", "vae"]
