from torch import nn

from mmwris.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class RISTestWrapper(nn.Module):
    """A wrapper for distributed *evaluation*: no DDP, no gradient sync.

    Testing needs only the distributed sampler and result collection, not
    DDP, and DDP refuses models without trainable parameters (such as the
    centre-prior baseline). ``tools/test.py`` uses this wrapper whenever the
    run is distributed.
    """

    def __init__(self, module: nn.Module, **kwargs) -> None:
        super().__init__()
        self.module = module

    def val_step(self, data):
        return self.module.val_step(data)

    def test_step(self, data):
        return self.module.test_step(data)

    def train_step(self, data, optim_wrapper):
        raise RuntimeError('RISTestWrapper is for evaluation only.')
