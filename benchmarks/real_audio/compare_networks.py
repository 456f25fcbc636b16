#!/usr/bin/env python3
"""asc_jax's BC-ResNet-Mod and the PyTorch reference side by side, with the same weights.

Builds the PyTorch reference (torch_bcresnet_mod.py, not part of this repository) and asc_jax's
network of the same width, prints the initial statistics of every convolution in both, copies
the torch weights (and BatchNorm statistics) into asc_jax's variables, and compares the logits
in eval and train mode, BatchNorm's running statistics after one step, and three SGD steps
(asc_jax.optim's chain against torch.optim.SGD, momentum 0.9, weight decay 1e-3). It needs
torch importable next to asc_jax: TORCH_SITE, if given, is added to sys.path (same numpy in
both venvs).

  python benchmarks/real_audio/compare_networks.py resnorm|none \
      [REFERENCE=path/to/torch_bcresnet_mod.py] [TORCH_SITE=venv_torch/lib/python3.11/site-packages]

Measured 2026-12-01 (width 2, 8 x 128 x 173 inputs of mean -8, std 2): logits agree to 2e-7
(eval) and 7e-7 (train) with and without ResNorm; three SGD steps agree to float32 noise. The
initial kernels follow the same U(+-1/sqrt(fan_in)); the stem and head biases were the one
difference (zeros in asc_jax until model.bias_init='torch').
"""
import sys, numpy as np
ARGS = dict(a.split('=', 1) for a in sys.argv[2:])
if 'TORCH_SITE' in ARGS:
  sys.path.append(ARGS['TORCH_SITE'])
import torch, jax, jax.numpy as jnp, flax
import importlib.util
spec = importlib.util.spec_from_file_location('tref', ARGS.get('REFERENCE', 'torch_bcresnet_mod.py'))
tref = importlib.util.module_from_spec(spec); spec.loader.exec_module(tref)
from asc_jax import defaults
from asc_jax.models import build_model
W=2; RES = sys.argv[1] == 'resnorm' if len(sys.argv) > 1 else True
torch.manual_seed(0)
tm = tref.BCResNetMod(width=W, resnorm=RES)
cfg = defaults.bcresnet_mod_model(W); cfg.norm = 'resnorm' if RES else 'none'; cfg.dropout_rate = 0.0
fm = build_model(cfg)
v = fm.init({'params': jax.random.PRNGKey(0)}, jnp.zeros((1,128,173)), train=False)
params = flax.core.unfreeze(v['params']); stats = flax.core.unfreeze(v['batch_stats'])
sd = {k: t.detach().numpy().copy() for k, t in tm.state_dict().items()}
# init statistics side by side
print('param | torch std / max|w| | flax std / max|w|')
def conv_t2f(w): return np.transpose(w, (2,3,1,0))
rows=[]
def put(fpath, tname, kind):
  node_p = params; node_s = stats
  *head, last = fpath
  t = sd[tname]
  if kind == 'conv': val = conv_t2f(t)
  elif kind == 'ssn': val = t.reshape(-1, 4).T
  else: val = t
  if last in ('mean','var'):
    for h in head: node_s = node_s[h]
    ref = node_s[last]; node_s[last] = jnp.asarray(val.reshape(ref.shape))
  else:
    for h in head: node_p = node_p[h]
    ref = node_p[last]
    rows.append(('/'.join(fpath), float(t.std()), float(np.abs(t).max()), float(np.std(ref)), float(np.abs(ref).max())))
    node_p[last] = jnp.asarray(val.reshape(ref.shape))
put(('stem','kernel'),'stem.weight','conv'); put(('stem','bias'),'stem.bias','vec')
for s,n in ((1,2),(2,2),(3,2),(4,3)):
  for i in range(n):
    fp=f'stage{s}_block{i}'; tp=f'stage{s}.{i}'
    if f'{tp}.pre.0.weight' in sd:
      put((fp,'pre_conv','kernel'),f'{tp}.pre.0.weight','conv')
      for a,b in (('scale','weight'),('bias','bias'),('mean','running_mean'),('var','running_var')):
        put((fp,'pre_bn',a),f'{tp}.pre.1.{b}','vec')
    put((fp,'freq_conv','kernel'),f'{tp}.freq_dw.weight','conv')
    for a,b in (('scale','weight'),('bias','bias'),('mean','running_mean'),('var','running_var')):
      put((fp,'ssn','bn',a),f'{tp}.ssn.bn.{b}','ssn')
      put((fp,'time_bn',a),f'{tp}.bn.{b}','vec')
    put((fp,'time_conv','kernel'),f'{tp}.time_dw.weight','conv')
    put((fp,'point_conv','kernel'),f'{tp}.pw.weight','conv')
put(('head','kernel'),'head.weight','conv'); put(('head','bias'),'head.bias','vec')
for r in rows:
  if 'kernel' in r[0] or r[0].endswith('bias') and ('stem' in r[0] or 'head' in r[0]):
    print(f'{r[0]:35s} {r[1]:.4f} {r[2]:.4f} | {r[3]:.4f} {r[4]:.4f}')
# forward equivalence
rng = np.random.default_rng(0)
x = (rng.standard_normal((8,128,173))*2.0 - 8.0).astype(np.float32)   # log-mel-like offset
for m in tm.modules():
  if isinstance(m, torch.nn.Dropout2d): m.p = 0.0
tm.eval()
with torch.no_grad(): te = tm(torch.from_numpy(x[:,None])).numpy()
fe = fm.apply({'params': params, 'batch_stats': stats}, x, train=False)
print('eval logits max|diff|', float(np.abs(te - np.asarray(fe)).max()), 'scale', float(np.abs(te).max()))
tm.train()
tt = tm(torch.from_numpy(x[:,None]))
ft, upd = fm.apply({'params': params, 'batch_stats': stats}, x, train=True, mutable=['batch_stats'])
print('train logits max|diff|', float(np.abs(tt.detach().numpy() - np.asarray(ft)).max()), 'scale', float(np.abs(tt.detach().numpy()).max()))
# running stats after one train forward
tsd = tm.state_dict()
a = np.asarray(upd['batch_stats']['stage1_block0']['pre_bn']['var']); b = tsd['stage1.0.pre.1.running_var'].numpy()
print('running var after 1 step (flax biased vs torch unbiased) max rel diff', float(np.abs(a-b).max()/np.abs(b).max()))
a = np.asarray(upd['batch_stats']['stage4_block2']['ssn']['bn']['var']); b = tsd['stage4.2.ssn.bn.running_var'].numpy().reshape(-1,4).T
print('ssn stage4 running var rel diff', float(np.abs(a-b).max()/np.abs(b).max()))
# ---- gradients and 3 optimizer steps (asc_jax.optim chain vs torch.optim.SGD)
import optax
from asc_jax import optim
y = rng.integers(0, 10, 8)
train_cfg = defaults.sgd_cosine_train(); train_cfg.update(dict(num_epochs=1, warmup_epochs=0.0, learning_rate=0.05, weight_decay=1e-3))
tx, sched = optim.make_optimizer(train_cfg, steps_per_epoch=100)
def loss_fn(p, bs):
  logits, upd = fm.apply({'params': p, 'batch_stats': bs}, x, train=True, mutable=['batch_stats'])
  return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(y)).mean(), upd['batch_stats']
p = jax.tree_util.tree_map(jnp.asarray, params); bs = stats; state = tx.init(p)
topt = torch.optim.SGD(tm.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
for step in range(3):
  (l, bs), g = jax.value_and_grad(loss_fn, has_aux=True)(p, bs)
  upd_, state = tx.update(g, state, p); p = optax.apply_updates(p, upd_)
  lr = float(sched(step)) 
  for gr in topt.param_groups: gr['lr'] = lr
  topt.zero_grad(); tl = torch.nn.functional.cross_entropy(tm(torch.from_numpy(x[:,None])), torch.from_numpy(y)); tl.backward(); topt.step()
  print('step', step, 'lr', lr, 'loss asc_jax', float(l), 'torch', tl.item())
tw = tm.state_dict()['stage2.0.pw.weight'].numpy(); fw = np.asarray(p['stage2_block0']['point_conv']['kernel'])
print('after 3 steps point_conv max|diff|', float(np.abs(conv_t2f(tw) - fw).max()), 'scale', float(np.abs(fw).max()))
tb = tm.state_dict()['stage1.0.pre.1.weight'].numpy(); fb = np.asarray(p['stage1_block0']['pre_bn']['scale'])
print('after 3 steps pre_bn scale max|diff|', float(np.abs(tb - fb).max()))
