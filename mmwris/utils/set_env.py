import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Register every mmwris (and mmseg) component into the registries.

    Args:
        init_default_scope (bool): Also make ``mmwris`` the default scope, so
            unprefixed types resolve to mmwris first, then mmseg, then
            mmengine. Defaults to True.
    """
    import mmseg.utils
    mmseg.utils.register_all_modules(init_default_scope=False)

    import mmwris.datasets  # noqa: F401
    import mmwris.engine  # noqa: F401
    import mmwris.evaluation  # noqa: F401
    import mmwris.models  # noqa: F401
    import mmwris.phrases  # noqa: F401
    import mmwris.proposals  # noqa: F401
    import mmwris.pseudo_labels  # noqa: F401
    import mmwris.visualization  # noqa: F401

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None or not DefaultScope.check_instance_created('mmwris'):
        DefaultScope.get_instance('mmwris', scope_name='mmwris')
    elif current.scope_name != 'mmwris':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "mmwris"; switching it to "mmwris".')
        DefaultScope.get_instance(
            f'mmwris-{datetime.datetime.now()}', scope_name='mmwris')
