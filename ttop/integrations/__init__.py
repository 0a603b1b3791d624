"""Callbacks that report a framework's training loop to ttop.

One module per framework, each with one ``TtopCallback`` class that takes the
:class:`ttop.TrainingMonitor` arguments::

    from ttop.integrations.lightning import TtopCallback      # Lightning
    from ttop.integrations.transformers import TtopCallback   # HF Trainer
    from ttop.integrations.keras import TtopCallback          # Keras 3

Importing this package imports no framework; importing one of the modules
imports only its own framework, and raises a one-line ImportError saying what
to install when that framework is missing. See docs/integrations.md.
"""
