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
- test-time inference goes through the bare network (not its DDP wrapper) in :meth:`DeblurTraining.inference`, the
  one place test-time options hook in: ``val.self_ensemble`` (4, 6 or 8 flips/rotations averaged, see
  ``test_time.py``) for every arch;
- one validation loop for single and distributed runs: each rank evaluates its share of the images and the sums are
  reduced, so every image counts exactly once; images are saved per sequence (``<dataset>/<seq>/<frame>_<suffix>``)
  because frame names repeat across sequences in GoPro-style sets.
"""
import os.path as osp
from collections import OrderedDict

import torch
from torch import distributed as dist
from torch.utils.data import default_collate
from tqdm import tqdm

from basicsr.metrics import calculate_metric
from basicsr.models import lr_scheduler as basicsr_lr_scheduler
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY
from ..compat import find_resume_state
from .lr_scheduler import PolyLR
from .test_time import ensemble_size, self_ensemble

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


class DeblurTraining:
    """What deblurzoo's image and video models share, mixed in before a BasicSR model class (see the module doc)."""

    def __init__(self, opt):
        ensemble_size((opt.get('val') or {}).get('self_ensemble'))  # a bad value fails before training starts
        train_opt = opt.get('train') or {}
        self.nan_policy = train_opt.get('nan_policy', 'stop')
        if self.nan_policy not in NAN_POLICIES:
            raise ValueError(f"train.nan_policy: unknown '{self.nan_policy}'; use one of {', '.join(NAN_POLICIES)}")
        self.nan_skip_limit = train_opt.get('nan_skip_limit', 100)
        if not isinstance(self.nan_skip_limit, int) or isinstance(self.nan_skip_limit, bool) or \
                self.nan_skip_limit < 1:
            raise ValueError(f'train.nan_skip_limit must be an int >= 1, got {self.nan_skip_limit!r}')
        self.nan_skipped = 0  # consecutive skipped steps
        super().__init__(opt)

    def setup_optimizers(self):
        params = [p for p in self.net_g.parameters() if p.requires_grad]
        optim_cls, kwargs = _with_type(self.opt['train']['optim_g'], 'optim_g', OPTIMIZERS)
        self.optimizer_g = optim_cls(params, **kwargs)
        self.optimizers.append(self.optimizer_g)

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
        self.output, aux = split_output(self.net_g(self.lq, return_aux=True, **self.train_forward_kwargs(current_iter)))
        loss_dict = self.compute_losses(aux)
        total = sum(loss_dict.values())
        total.backward()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        if not self._finite_step(total):
            self._non_finite_step(loss_dict, current_iter)
            return
        self.nan_skipped = 0
        self.optimizer_g.step()
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _finite_step(self, total):
        """Whether the loss and every gradient are finite, on every rank (DDP ranks decide together: their
        gradients are already averaged, but a loss is local)."""
        grads = [p.grad for group in self.optimizer_g.param_groups for p in group['params'] if p.grad is not None]
        finite = torch.isfinite(total.detach()).all()
        if grads:
            finite = finite & torch.isfinite(torch.nn.utils.get_total_norm(grads))
        flag = finite.to(torch.float32).reshape(1)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

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

    def restore(self, net, lq):
        """One pass of ``net`` (bare, in eval mode) over ``lq``; subclasses change how their nets are run."""
        return split_output(net(lq))[0]

    def inference(self, net, lq):
        """Restore ``lq`` with ``net`` (bare, in eval mode): :meth:`restore`, averaged over the flips and rotations
        of ``val.self_ensemble`` when it is set (:func:`~deblurzoo.models.test_time.self_ensemble`)."""
        num = ensemble_size((self.opt.get('val') or {}).get('self_ensemble'))
        return self_ensemble(lambda x: self.restore(net, x), lq, num)

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
            if save_img:
                imwrite(result, self._visualization_path(data, dataset_name, current_iter))
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
