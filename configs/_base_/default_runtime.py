default_scope = 'mmwris'
custom_imports = dict(imports=['mmwris'], allow_failed_imports=False)
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='Visualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # checkpoints that survive a kill at any moment (write, then rename)
    checkpoint=dict(type='AtomicCheckpointHook', by_epoch=False,
                    interval=2000),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='RISVisualizationHook', draw=False))
