"""The .tflite flatbuffer as a C array header, and the snippet of a TFLite Micro application
that runs it (what an embedded build compiles in)."""

import re

import numpy as np

BYTES_PER_LINE = 12


def c_identifier(name: str) -> str:
  identifier = re.sub(r'\W', '_', name)
  return identifier if not identifier[:1].isdigit() else f'_{identifier}'


def header(model: bytes, name: str, *, arena_bytes: int, input_scale: float,
           input_zero_point: int, output_scale: float, output_zero_point: int,
           class_names, output_dtype: str = 'int8') -> str:
  """`<name>.h`: the model bytes (16-byte aligned, const: it stays in flash), its length, the
  tensor arena size TFLite Micro needs, the input/output quantization and the class names."""
  ident = c_identifier(name)
  guard = f'{ident.upper()}_H_'
  values = np.frombuffer(model, np.uint8)
  lines = [', '.join(f'0x{value:02x}' for value in values[start:start + BYTES_PER_LINE])
           for start in range(0, len(values), BYTES_PER_LINE)]
  classes = ', '.join(f'"{label}"' for label in class_names)
  return '\n'.join([
      f'// {name}.h: written by python -m asc_jax.export; do not edit.',
      ('// A TFLite model with int8 weights and float32 kernels' if output_dtype == 'float32' else
       '// A fully integer TFLite model (int8 activations and weights)') + ' for TensorFlow Lite for',
      '// Microcontrollers. Input: int8 [1, F, T, 1] log-mel after the input ResNorm (see',
      f'// export_report.md); output: {output_dtype} logits [1, classes].',
      f'#ifndef {guard}', f'#define {guard}', '', '#include <stdint.h>', '',
      f'#define {ident.upper()}_LEN {len(model)}',
      f'#define {ident.upper()}_ARENA_BYTES {arena_bytes}  '
      '// measured with tflite-micro (64-bit host), rounded up',
      f'#define {ident.upper()}_INPUT_SCALE {input_scale!r}f',
      f'#define {ident.upper()}_INPUT_ZERO_POINT {input_zero_point}',
      f'#define {ident.upper()}_OUTPUT_SCALE {output_scale!r}f',
      f'#define {ident.upper()}_OUTPUT_ZERO_POINT {output_zero_point}',
      f'#define {ident.upper()}_NUM_CLASSES {len(list(class_names))}', '',
      f'static const char* const {ident}_class_names[] = {{{classes}}};', '',
      f'alignas(16) static const unsigned char {ident}[{len(model)}] = {{',
      *(f'  {line},' for line in lines), '};', '', f'#endif  // {guard}', ''])


def snippet(name: str, op_names, output_dtype: str = 'int8') -> str:
  """C++ of a TFLite Micro application loading the header (op resolver with exactly the ops)."""
  ident = c_identifier(name)
  adders = {'CONV_2D': 'AddConv2D', 'DEPTHWISE_CONV_2D': 'AddDepthwiseConv2D', 'ADD': 'AddAdd',
            'SUB': 'AddSub', 'MUL': 'AddMul', 'MEAN': 'AddMean', 'RSQRT': 'AddRsqrt',
            'LOGISTIC': 'AddLogistic',
            'MAX_POOL_2D': 'AddMaxPool2D', 'PAD': 'AddPad', 'SLICE': 'AddSlice',
            'CONCATENATION': 'AddConcatenation', 'QUANTIZE': 'AddQuantize',
            'DEQUANTIZE': 'AddDequantize'}
  ops = sorted(op_names)
  field = {'int16': 'i16', 'float32': 'f'}.get(output_dtype, 'int8')
  c_type = 'float' if output_dtype == 'float32' else f'{output_dtype}_t'
  logit_note = ('logits are float32' if output_dtype == 'float32' else
                'real logit = (q - OUTPUT_ZERO_POINT) * OUTPUT_SCALE')
  registrations = '\n'.join(f'  resolver.{adders[op]}();' for op in ops)
  return f'''```cpp
#include "{name}.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

alignas(16) static uint8_t tensor_arena[{ident.upper()}_ARENA_BYTES];

int classify(const int8_t* features /* F * T values, frequency-major */) {{
  const tflite::Model* model = tflite::GetModel({ident});
  static tflite::MicroMutableOpResolver<{len(ops)}> resolver;
{registrations}
  static tflite::MicroInterpreter interpreter(model, resolver, tensor_arena,
                                              sizeof(tensor_arena));
  if (interpreter.AllocateTensors() != kTfLiteOk) return -1;
  TfLiteTensor* input = interpreter.input(0);
  for (size_t i = 0; i < input->bytes; ++i) input->data.int8[i] = features[i];
  if (interpreter.Invoke() != kTfLiteOk) return -1;
  const {c_type}* logits = interpreter.output(0)->data.{field};
  int best = 0;
  for (int k = 1; k < {ident.upper()}_NUM_CLASSES; ++k) if (logits[k] > logits[best]) best = k;
  return best;  // {ident}_class_names[best]; {logit_note}
}}
```
'''
