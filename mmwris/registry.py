"""mmwris registries.

Every registry is a child of the matching mmseg registry, so a config with
``default_scope='mmwris'`` resolves our components first and then falls back
to mmseg's (``ResNetV1c``, ``CrossEntropyLoss``, ``IoUMetric``, ...) and
mmengine's without a scope prefix.
"""
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS as MMSEG_DATA_SAMPLERS
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import EVALUATOR as MMSEG_EVALUATOR
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import INFERENCERS as MMSEG_INFERENCERS
from mmseg.registry import LOG_PROCESSORS as MMSEG_LOG_PROCESSORS
from mmseg.registry import LOOPS as MMSEG_LOOPS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import OPTIMIZERS as MMSEG_OPTIMIZERS
from mmseg.registry import PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS
from mmseg.registry import RUNNER_CONSTRUCTORS as MMSEG_RUNNER_CONSTRUCTORS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmseg.registry import TASK_UTILS as MMSEG_TASK_UTILS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISBACKENDS as MMSEG_VISBACKENDS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

RUNNERS = Registry('runner', parent=MMSEG_RUNNERS)
RUNNER_CONSTRUCTORS = Registry(
    'runner constructor', parent=MMSEG_RUNNER_CONSTRUCTORS)
LOOPS = Registry('loop', parent=MMSEG_LOOPS, locations=['mmwris.engine'])
HOOKS = Registry('hook', parent=MMSEG_HOOKS, locations=['mmwris.engine'])
DATASETS = Registry(
    'dataset', parent=MMSEG_DATASETS, locations=['mmwris.datasets'])
DATA_SAMPLERS = Registry(
    'data sampler', parent=MMSEG_DATA_SAMPLERS,
    locations=['mmwris.datasets'])
TRANSFORMS = Registry(
    'transform', parent=MMSEG_TRANSFORMS, locations=['mmwris.datasets'])
MODELS = Registry('model', parent=MMSEG_MODELS, locations=['mmwris.models'])
MODEL_WRAPPERS = Registry(
    'model_wrapper', parent=MMSEG_MODEL_WRAPPERS, locations=['mmwris.engine'])
WEIGHT_INITIALIZERS = Registry(
    'weight initializer', parent=MMSEG_WEIGHT_INITIALIZERS)
OPTIMIZERS = Registry(
    'optimizer', parent=MMSEG_OPTIMIZERS, locations=['mmwris.engine'])
OPTIM_WRAPPERS = Registry(
    'optim_wrapper', parent=MMSEG_OPTIM_WRAPPERS, locations=['mmwris.engine'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry(
    'optimizer wrapper constructor',
    parent=MMSEG_OPTIM_WRAPPER_CONSTRUCTORS,
    locations=['mmwris.engine'])
PARAM_SCHEDULERS = Registry(
    'parameter scheduler', parent=MMSEG_PARAM_SCHEDULERS)
METRICS = Registry(
    'metric', parent=MMSEG_METRICS, locations=['mmwris.evaluation'])
EVALUATOR = Registry(
    'evaluator', parent=MMSEG_EVALUATOR, locations=['mmwris.evaluation'])
TASK_UTILS = Registry(
    'task util',
    parent=MMSEG_TASK_UTILS,
    locations=['mmwris.models', 'mmwris.phrases', 'mmwris.proposals',
               'mmwris.pseudo_labels'])
VISUALIZERS = Registry('visualizer', parent=MMSEG_VISUALIZERS)
VISBACKENDS = Registry('vis_backend', parent=MMSEG_VISBACKENDS)
LOG_PROCESSORS = Registry('log_processor', parent=MMSEG_LOG_PROCESSORS)
INFERENCERS = Registry('inferencer', parent=MMSEG_INFERENCERS)
