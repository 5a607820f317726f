"""Run under ``torchrun``: trains the smoke model on planted pairs with DistributedDataParallel."""

import sys

from matr.config import override, preset
from matr.data import PairDataset
from matr.train import TrainConfig, fit

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from planted import planted_pairs  # noqa: E402


def main(out_dir: str, batch_size: int, epochs: int) -> None:
    source, records = planted_pairs(num_pairs=16, seed=3)
    config = override(preset("smoke"), {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0})
    fit(
        config,
        TrainConfig(epochs=epochs, batch_size=batch_size, lr=1e-3, device="cpu"),
        PairDataset(records, source),
        out_dir,
        progress=False,
    )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
