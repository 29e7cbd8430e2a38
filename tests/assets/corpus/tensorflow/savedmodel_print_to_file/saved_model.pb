Ô
"serve*2.18.0À
 
serving_default_xPlaceholder

dense/kernelVarHandleOp
E
StatefulPartitionedCallStatefulPartitionedCallserving_default_x

saver_filenamePlaceholder
3
StatefulPartitionedCall_1SaveV2saver_filename
6
StatefulPartitionedCall_2	RestoreV2saver_filename¦
£

__inference_serve_42
MatMulMatMulxkernel
ReluReluMatMul:
PrintV2PrintV2Relu* 
output_streamfile:///tmp/x
IdentityIdentityRelu"í