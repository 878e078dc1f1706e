# The compiled twin's loop (_dispatch_c.pyx).  Its parts declare themselves in
# _cfilters.pxd, _ctables.pxd, _fields.pxd; shared numbers in _numbers.pxd.
