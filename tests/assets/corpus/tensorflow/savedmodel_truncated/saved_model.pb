–
"serve*2.18.0‚
 
serving_default_xPlaceholder

dense/kernelVarHandleOp
E
StatefulPartitionedCallStatefulPartitionedCallserving_default_x

saver_filenamePlaceholder
3
StatefulPar