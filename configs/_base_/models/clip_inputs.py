# The inputs that TRIS step 1, step 2 and PCNet share: CLIP's pixel
# statistics at 320x320 and the CLIP RN50 towers. Weights are read from a
# local file: set clip_weights.
_base_ = ['./clip_preprocessor.py']
clip_arch = 'RN50-quickgelu'  # OpenAI weights use QuickGELU
clip_weights = None
data_preprocessor = dict(_base_.data_preprocessor, size=(320, 320))
# The model keys they fill (model = dict(type=..., **clip_towers, ...)).
clip_towers = dict(
    data_preprocessor=data_preprocessor,
    image_encoder=dict(
        type='CLIPVisionEncoder', arch=clip_arch, pretrained=clip_weights,
        out_indices=(0, 1, 2, 3)),
    text_encoder=dict(
        type='CLIPTextEncoder', arch=clip_arch, pretrained=clip_weights,
        context_length=20))
