# SAM pretraining (SAMPretrainer) of the toy stand-in architecture.
model = dict(
    type='SAMPretrainer',
    arch='vit_toy',
    max_instances=16,
    box_prob=0.5,
    box_noise=0.1,
    box_noise_max=4.0,
    correction_rounds=2,
    focal_weight=20.0,
    focal_alpha=-1,
    dice_weight=1.0,
    iou_weight=1.0)
