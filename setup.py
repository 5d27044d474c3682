import os.path as osp

from setuptools import find_packages, setup


def read_requirements(name):
    """Requirement lines of requirements/<name>.txt (comments dropped)."""
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [
            line.strip() for line in f
            if line.strip() and not line.startswith(('#', '-r'))
        ]


def get_version():
    scope = {}
    with open(osp.join(osp.dirname(__file__), 'mmwris', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


setup(
    name='mmwris',
    version=get_version(),
    description='Weakly supervised referring image segmentation '
    '(TRIS, PCNet, PPT, MagNet) for MMSegmentation',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.8',
    # mmseg's wheel ships a top-level "tests" package: never ship ours.
    packages=find_packages(
        include=['mmwris', 'mmwris.*'],
        exclude=['tests', 'tests.*', 'configs', 'tools']),
    package_data={'mmwris.phrases': ['prompts/*.txt']},
    install_requires=read_requirements('runtime.txt'),
    extras_require=dict(
        mmstack=read_requirements('mmstack.txt'),
        tests=read_requirements('tests.txt')),
    zip_safe=False)
