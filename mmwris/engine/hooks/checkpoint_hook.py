"""Crash-safe checkpoints: a killed run never leaves a truncated ``.pth``
that resuming would read, nor deletes the last good checkpoint first."""
import os.path as osp

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook

from mmwris.registry import HOOKS
from mmwris.utils.io import atomic_write_bytes

ATOMIC_BACKEND = 'atomic_local'


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend, writing through a temporary file in
    the same folder that is renamed into place (``os.replace``): a reader
    sees the old file or the whole new one, never a partial one."""

    def put(self, obj: bytes, filepath) -> None:
        from mmengine.utils import mkdir_or_exist
        mkdir_or_exist(osp.dirname(str(filepath)))
        atomic_write_bytes(str(filepath), obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        self.put(obj.encode(encoding), filepath)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill at any moment.

    - Checkpoints are written with :class:`AtomicLocalBackend` (unless
      ``backend_args`` names another backend).
    - ``last_checkpoint`` is rewritten atomically, and only after the new
      checkpoint is complete.
    - With ``max_keep_ckpts``, the oldest checkpoint is deleted only after
      the new one is written (mmengine deletes it first, so a kill during
      the save could leave no checkpoint to resume from).

    Takes every argument of mmengine's ``CheckpointHook``.
    """

    def __init__(self, *args, backend_args=None, **kwargs) -> None:
        if backend_args is None:
            backend_args = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, backend_args=backend_args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        stale = self._update_kept_ids(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args)
        if not is_main_process():
            return
        atomic_write_bytes(
            osp.join(runner.work_dir, 'last_checkpoint'),
            str(self.last_ckpt).encode('utf-8'))
        for old in stale:
            path = self.file_backend.join_path(self.out_dir,
                                               self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):
                self.file_backend.rmtree(path)

    def _update_kept_ids(self, runner, step) -> list:
        """Record ``step`` among the kept checkpoints (in the message hub,
        so the checkpoint itself knows); return the steps to delete once it
        is written."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids
                                        and self.keep_ckpt_ids[-1] == step):
            return []
        stale = []
        if len(self.keep_ckpt_ids) == self.keep_ckpt_ids.maxlen:
            stale.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info('keep_ckpt_ids',
                                       list(self.keep_ckpt_ids))
        return stale
