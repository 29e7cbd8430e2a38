

inputPlaceholder
3
hookPyFuncStatelessinput*
token
pyfunc_7"í