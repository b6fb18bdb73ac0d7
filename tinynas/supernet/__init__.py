"""The weight-sharing super-network of the MCUNet space: training, checkpoints shared by workers."""

from tinynas.supernet.training import (SupernetConfig, SupernetState, checkpoint_path, shared_supernet,
                                       supernet_key, train_supernet)

__all__ = ["SupernetConfig", "SupernetState", "checkpoint_path", "shared_supernet", "supernet_key",
           "train_supernet"]
