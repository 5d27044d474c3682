"""Model-zoo metafiles (OpenMMLab format): every entry points at a config
that loads, and every paper config of the folder has an entry."""
import glob
import os.path as osp

import pytest
import yaml
from mmengine.config import Config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
METAFILES = sorted(glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yaml')))


def test_the_tris_metafile_exists():
    assert osp.join(REPO, 'configs', 'tris', 'metafile.yaml') in METAFILES


@pytest.mark.parametrize('path', METAFILES,
                         ids=[osp.basename(osp.dirname(p)) for p in METAFILES])
def test_metafile_lists_every_paper_config(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    collections = {c['Name'] for c in doc['Collections']}
    for collection in doc['Collections']:
        assert collection['Paper']['URL'].startswith('https://')
    names, configs = set(), set()
    for model in doc['Models']:
        assert model['In Collection'] in collections, model['Name']
        config = osp.join(REPO, model['Config'])
        assert osp.isfile(config), f'{path}: {model["Config"]} is missing'
        assert osp.basename(config)[:-3] == model['Name']
        assert model['Name'] not in names, f'{model["Name"]} twice'
        names.add(model['Name'])
        configs.add(osp.normpath(config))
        assert model['Metadata']['Training Data']
        for result in model['Results']:
            assert result['Task'] == 'Referring Image Segmentation'
            assert result['Dataset']
            assert isinstance(result['Metrics'], dict)
        Config.fromfile(config)
    folder = osp.dirname(path)
    paper = {osp.normpath(p) for p in glob.glob(osp.join(folder, '*.py'))
             if 'toyrefer' not in osp.basename(p)}
    assert paper - configs == set(), f'{path} misses {sorted(paper - configs)}'
