"""mmwris: weakly supervised referring image segmentation for MMSegmentation."""
import mmcv
import mmengine
import mmseg
from mmengine.utils import digit_version

from .version import __version__

MMCV_MIN, MMCV_MAX = '2.0.0', '2.4.0'
MMENGINE_MIN, MMENGINE_MAX = '0.10.0', '1.0.0'
MMSEG_MIN, MMSEG_MAX = '1.2.0', '1.5.0'


def _check_version(name: str, version: str, low: str, high: str) -> None:
    """Raise a clear error when an OpenMMLab dependency is out of range."""
    if not digit_version(low) <= digit_version(version) < digit_version(high):
        raise ImportError(
            f'mmwris {__version__} needs {low} <= {name} < {high}, but '
            f'{name} {version} is installed. Install the tested stack with '
            '`pip install -r requirements/mmstack.txt` (OneDL distributions '
            'onedl-mmengine / onedl-mmcv / onedl-mmsegmentation).')


_check_version('mmcv', mmcv.__version__, MMCV_MIN, MMCV_MAX)
_check_version('mmengine', mmengine.__version__, MMENGINE_MIN, MMENGINE_MAX)
_check_version('mmseg', mmseg.__version__, MMSEG_MIN, MMSEG_MAX)

__all__ = ['__version__']
