–
"serve*2.18.0‚
 
serving_default_xPlaceholder

dense/kernelVarHandleOp
E
StatefulPartitionedCallStatefulPartitionedCallserving_default_x

saver_filenamePlaceholder
3
StatefulPartitionedCall_1SaveV2saver_filename
6
StatefulPartitionedCall_2	RestoreV2saver_filenamei
g

__inference_serve_42
MatMulMatMulxkernel
ReluReluMatMul
IdentityIdentityRelu"í