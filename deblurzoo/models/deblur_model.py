"""The image deblurring model every deblurzoo image arch trains with: BasicSR's SRModel plus what deblurring needs.

:class:`DeblurTraining` holds what image and video models share (optimisers, schedulers, losses, the training step,
test-time inference); :class:`DeblurModel` is it on ``SRModel``, ``VideoDeblurModel`` on ``VideoRecurrentModel``.

Differences from ``SRModel`` (and only these):
- every deblurzoo arch returns the image from ``net(x)`` in every mode, and ``(image, aux)`` from
  ``net(x, return_aux=True)``, ``aux`` a dict of named auxiliary outputs (multi-stage outputs, deformable offsets, ...;
  empty for archs with none); the training forward asks for it and subclasses turn ``aux`` into extra losses in
  :meth:`DeblurTraining.compute_losses`;
- a ``flow`` tensor in the batch is kept (``self.flow``) for flow-supervised losses;
- losses may return a tensor or BasicSR's ``(perceptual, style)`` tuple; clips (b, t, c, h, w) are scored as b * t
  images;
- options are never mutated (``SRModel`` pops ``type`` out of ``optim_g`` and ``scheduler``);
- schedulers: BasicSR's plus ``PolyLR``;
- a step whose loss or gradients are not finite never updates the parameters: ``train.nan_policy: stop`` (default)
  stops training with a message naming the iteration, the loss terms and the newest checkpoint; ``skip`` drops the
  step (a warning in the log), up to ``train.nan_skip_limit`` (default 100) steps in a row;
- mixed precision, memory format and compilation of the training forward: ``train.amp`` (bf16 | fp16 | false),
  ``train.channels_last``, ``train.compile`` (see ``mixed_precision.py``); losses, validation and metrics stay in
  float32, and the fp16 gradient scaler's state is part of the training state (:meth:`extra_training_state`);
- test-time inference goes through the bare network (not its DDP wrapper) and the inference engine's
  :class:`~deblurzoo.inference.Restorer` (the CLI's), built in :meth:`DeblurTraining.restorer`, the one place test-time
  options hook in, for every arch: ``val.self_ensemble`` (4, 6 or 8 flips/rotations averaged, see
  ``deblurzoo/inference/test_time.py``), ``val.tile`` (tile side in pixels, or 'auto') and ``val.tile_overlap``
  (default 64) for inputs larger than memory allows; a video net given images sees each as a one-frame video;
- one validation loop for single and distributed runs: each rank evaluates its share of the images and the sums are
  reduced, so every image counts exactly once; images are saved per sequence (``<dataset>/<seq>/<frame>_<suffix>``)
  because frame names repeat across sequences in GoPro-style sets.
"""
import os
import os.path as osp
from collections import OrderedDict

import torch
from torch import distributed as dist
from torch.utils.data import default_collate
from tqdm import tqdm

from basicsr.metrics import calculate_metric
from basicsr.models import lr_scheduler as basicsr_lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, tensor2img
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY
from ..compat import find_resume_state
from ..data import safe_io
from .lr_scheduler import PolyLR
from .mixed_precision import MixedPrecision, to_float32
from ..inference import Restorer, ensemble_size
from ..inference.test_time import check_tiling

SCHEDULERS = {
    'MultiStepLR': basicsr_lr_scheduler.MultiStepRestartLR,
    'MultiStepRestartLR': basicsr_lr_scheduler.MultiStepRestartLR,
    'CosineAnnealingRestartLR': basicsr_lr_scheduler.CosineAnnealingRestartLR,
    'PolyLR': PolyLR,
}
NAN_POLICIES = ('stop', 'skip')
OPTIMIZERS = {'Adam': torch.optim.Adam, 'AdamW': torch.optim.AdamW, 'SGD': torch.optim.SGD}


def split_output(out):
    """(image, aux dict) from what a net returned: ``(image, aux)`` (``net(x, return_aux=True)``) or the image alone
    (aux empty)."""
    if isinstance(out, (tuple, list)):
        image, aux = out
        return image, aux
    return out, {}


def _with_type(opt, key, table):
    """Copy of ``opt`` without ``type`` and the class ``type`` names in ``table``; errors name the YAML key."""
    opt = dict(opt)
    kind = opt.pop('type', None)
    if kind not in table:
        raise ValueError(f"train.{key}.type: unknown '{kind}'; use one of {', '.join(table)}")
    return table[kind], opt


def as_images(x):
    """A (b, t, c, h, w) clip as b * t images (b * t, c, h, w); images unchanged."""
    return x.flatten(0, 1) if x.dim() == 5 else x


def check_test_options(val_opt):
    """Validate the test-time options of ``val`` (``self_ensemble``, ``tile``, ``tile_overlap``), naming the key."""
    ensemble_size(val_opt.get('self_ensemble'))
    tile, overlap = val_opt.get('tile'), val_opt.get('tile_overlap', 64)
    if tile in (None, 0, 'auto'):
        return
    try:
        check_tiling(tile, overlap)
    except ValueError as err:
        raise ValueError(f'val.{err}') from None


class DeblurTraining:
    """What deblurzoo's image and video models share, mixed in before a BasicSR model class (see the module doc)."""

    def __init__(self, opt):
        check_test_options(opt.get('val') or {})  # a bad value fails before training starts
        train_opt = opt.get('train') or {}
        self.nan_policy = train_opt.get('nan_policy', 'stop')
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"train.nan_policy: unknown '{self.nan_policy}'; use one of {', '.join(NAN_POLICIES)}")
        self.nan_skip_limit = train_opt.get('nan_skip_limit', 100)
        if not isinstance(self.nan_skip_limit, int) or isinstance(self.nan_skip_limit, bool) or \
                self.nan_skip_limit < 1:
            raise ValueError(f'train.nan_skip_limit must be an int >= 1, got {self.nan_skip_limit!r}')
        self.nan_skipped = 0  # consecutive skipped steps
        self.amp = MixedPrecision(train_opt)
        super().__init__(opt)

    def model_to_device(self, net):
        return super().model_to_device(self.amp.prepare_network(net, self.device))

    def extra_training_state(self):
        """What the training state keeps (under ``extra``) besides BasicSR's optimizers and schedulers: the fp16
        gradient scaler's state."""
        return self.amp.state_dict()

    def load_extra_training_state(self, state):
        """Restore what :meth:`extra_training_state` returned."""
        self.amp.load_state_dict(state)

    def setup_optimizers(self):
        optim_cls, kwargs = _with_type(self.opt['train']['optim_g'], 'optim_g', OPTIMIZERS)
        self.optimizer_g = optim_cls(self.optimizer_param_groups(kwargs.get('lr')), **kwargs)
        self.optimizers.append(self.optimizer_g)

    def optimizer_param_groups(self, lr):
        """What ``optim_g`` trains: the trainable parameters of ``net_g``, or a list of parameter groups (dicts with
        their own ``lr``) where a model trains parts at different rates (``SVDNModel``'s ``dcn_lr_mul``)."""
        return [p for p in self.net_g.parameters() if p.requires_grad]

    def setup_schedulers(self):
        sched_cls, kwargs = _with_type(self.opt['train']['scheduler'], 'scheduler', SCHEDULERS)
        self.schedulers.extend(sched_cls(optimizer, **kwargs) for optimizer in self.optimizers)

    def compute_losses(self, aux):
        """Loss terms of one training step as an ordered dict of scalar tensors (summed for the backward pass).

        Args:
            aux (dict): The net's auxiliary outputs (``net(x, return_aux=True)``; empty for archs with none).
        """
        losses = OrderedDict()
        if self.cri_pix:
            losses['l_pix'] = self.cri_pix(self.output, self.gt)
        if self.cri_perceptual:
            percep = self.cri_perceptual(as_images(self.output), as_images(self.gt))
            if isinstance(percep, tuple):  # BasicSR's PerceptualLoss: (perceptual, style), either may be None
                for name, value in zip(('l_percep', 'l_style'), percep):
                    if value is not None:
                        losses[name] = value
            else:
                losses['l_percep'] = percep
        return losses

    def train_forward_kwargs(self, current_iter):
        """Keyword arguments of the training forward ``net_g(lq, **kwargs)`` at ``current_iter`` (schedules hook in)."""
        return {}

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        with self.amp.autocast():
            out = self.net_g(self.lq, return_aux=True, **self.train_forward_kwargs(current_iter))
        self.output, aux = split_output(to_float32(out))  # losses in float32
        loss_dict = self.compute_losses(aux)
        total = sum(loss_dict.values())
        self.amp.backward(total)
        self.amp.unscale(self.optimizer_g)
        self.log_dict = self.reduce_loss_dict(loss_dict)
        loss_finite, grads_finite = self._finite_flags(total)
        if self.amp.overflowed(loss_finite, grads_finite):  # fp16: the scaler skips the step and lowers its scale
            self.amp.step(self.optimizer_g)
            return
        if not (loss_finite and grads_finite):
            self.amp.skip()
            self._non_finite_step(loss_dict, current_iter)
            return
        self.nan_skipped = 0
        self.amp.step(self.optimizer_g)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _finite_flags(self, total):
        """Whether the loss, and whether every gradient, is finite on every rank (DDP ranks decide together: their
        gradients are already averaged, but a loss is local)."""
        grads = [p.grad for group in self.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
        flags = torch.ones(2, device=total.device)
        flags[0] = torch.isfinite(total.detach()).all()
        if grads:
            flags[1] = torch.isfinite(torch.nn.utils.get_total_norm(grads))
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flags, op=dist.ReduceOp.MIN)
        loss_finite, grads_finite = flags.tolist()
        return bool(loss_finite), bool(grads_finite)

    def _non_finite_step(self, loss_dict, current_iter):
        """A step whose loss or gradients are NaN/inf: the parameters are left as they were; ``train.nan_policy``
        'stop' stops training with a message (the checkpoints already saved are untouched), 'skip' drops the step,
        up to ``train.nan_skip_limit`` in a row."""
        self.optimizer_g.zero_grad()
        values = ', '.join(f'{name}={float(value.detach()):.4g}' for name, value in loss_dict.items())
        where = f"non-finite loss or gradient at iteration {current_iter} ({values})"
        saved = find_resume_state(self.opt) if self.opt.get('path', {}).get('training_states') else None
        last = f'the newest checkpoint is {saved}' if saved else 'no checkpoint has been saved yet'
        self.nan_skipped += 1
        if self.nan_policy == 'skip' and self.nan_skipped <= self.nan_skip_limit:
            get_root_logger().warning(f'{where}: step skipped ({self.nan_skipped} in a row; train.nan_policy: skip, '
                                      f'train.nan_skip_limit: {self.nan_skip_limit})')
            return
        reason = (f'{self.nan_skipped} steps in a row (train.nan_skip_limit: {self.nan_skip_limit})'
                  if self.nan_policy == 'skip' else 'train.nan_policy: stop')
        raise FloatingPointError(f'{where}; training stopped ({reason}). The parameters were not updated and {last}: '
                                 'resume from it with --auto_resume (a lower learning rate may help), or set '
                                 'train.nan_policy: skip to skip such steps')

    def restorer(self, net, **kwargs):
        """The inference engine's :class:`~deblurzoo.inference.Restorer` for ``net`` (bare, in eval mode) with the
        ``val`` options (``self_ensemble``, ``tile``, ``tile_overlap``); ``kwargs``: more of its arguments (subclasses
        add what their nets need, e.g. a stage 1)."""
        val_opt = self.opt.get('val') or {}
        return Restorer(net, self_ensemble=val_opt.get('self_ensemble'), tile=val_opt.get('tile'),
                        tile_overlap=val_opt.get('tile_overlap', 64), check_finite=False,
                        forward_kwargs=self.test_forward_kwargs(net), **kwargs)

    def test_forward_kwargs(self, net):
        """Keyword arguments of the test-time forward ``net(lq, **kwargs)`` (``train_forward_kwargs``'s twin)."""
        return {}

    def inference(self, net, lq):
        """Restore ``lq`` (an image batch, or clips (b, t, c, h, w)) with ``net`` (bare, in eval mode)."""
        return self.restorer(net).restore(lq)

    def test(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.get_bare_model(self.net_g)
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = self.inference(net, self.lq)
        net.train(was_training)


@MODEL_REGISTRY.register()
class DeblurModel(DeblurTraining, SRModel):
    """Image deblurring model (see the module docstring). YAML: as BasicSR's SRModel."""

    def feed_data(self, data):
        super().feed_data(data)
        if 'flow' in data:
            self.flow = data['flow'].to(self.device)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self.nondist_validation(dataloader, current_iter, tb_logger, save_img)

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        dataset = dataloader.dataset
        dataset_name = dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        rank, world_size = get_dist_info()
        sums = torch.zeros(len(metrics) + 1, dtype=torch.float64)  # metric sums, then the image count
        indices = range(rank, len(dataset), world_size)
        pbar = tqdm(total=len(dataset), unit='image', desc=f'Validate {dataset_name}',
                    disable=rank != 0 or not self.opt['val'].get('pbar', False))
        for idx in indices:
            data = default_collate([dataset[idx]])
            self.feed_data(data)
            self.test()
            result = tensor2img([self.output.detach().cpu()])
            metric_data = {'img': result}
            if hasattr(self, 'gt'):
                metric_data['img2'] = tensor2img([self.gt.detach().cpu()])
                del self.gt
            del self.lq, self.output
            if save_img:  # encoded in memory and written atomically: any file name, no partial file
                path = self._visualization_path(data, dataset_name, current_iter)
                os.makedirs(osp.dirname(path), exist_ok=True)
                safe_io.write_image(path, result)
            for i, metric_opt in enumerate(metrics.values()):
                sums[i] += calculate_metric(metric_data, metric_opt)
            sums[-1] += 1
            pbar.update(world_size)
        pbar.close()
        if world_size > 1:  # on the model's device: NCCL reduces CUDA tensors only
            sums = sums.to(self.device)
            dist.all_reduce(sums)
            sums = sums.cpu()
        if metrics:
            self._initialize_best_metric_results(dataset_name)
            self.metric_results = {name: (sums[i] / sums[-1]).item() for i, name in enumerate(metrics)}
            for name, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, name, value, current_iter)
            if rank == 0:
                self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def _visualization_path(self, data, dataset_name, current_iter):
        """``<visualization>/<dataset>/<seq>/<frame>_<suffix>.png`` (training: ``<seq>/<frame>_<iter>.png``)."""
        key = data['key'][0] if 'key' in data else osp.splitext(osp.basename(data['lq_path'][0]))[0]
        key = osp.splitext(key)[0]
        if self.opt['is_train']:
            return osp.join(self.opt['path']['visualization'], dataset_name, f'{key}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(self.opt['path']['visualization'], dataset_name, f'{key}_{suffix}.png')
