"""SAPHNet's training model (paper 003): every stage supervised, and the pixel samplers trained by policy gradient.

Schedule (YAML ``train``):
- ``pretrain_iter``: iterations trained with uniform sampling (the deblurring network alone, paper Sec. 3.1.1); the
  samplers are idle and validation samples uniformly too. Default: 0.
- afterwards both train jointly: the network on its pixel losses over the pixels the samplers draw, each sampler on
  ``reward_opt`` (``AdaptiveSamplingRewardLoss``) with the stage outputs at and after its stage as reward; with
  ``baseline: greedy`` a second forward (no gradient) with the top-N choice gives the baseline.
- ``pixel_opt`` applies to the final output and, when the arch returns them (``stage_supervision``), to every earlier
  stage's output (``l_pix_stage1``, ...).
For DDP set ``find_unused_parameters: true``: the samplers get no gradient while pre-training.
"""
import torch

from basicsr.losses import build_loss
from basicsr.utils.registry import MODEL_REGISTRY
from ..archs.protocol import arch_info
from .deblur_model import DeblurModel


@MODEL_REGISTRY.register()
class SAPHNetModel(DeblurModel):
    """DeblurModel with per-stage supervision and the two-phase adaptive-sampling schedule (see the module doc)."""

    def init_training_settings(self):
        train_opt = self.opt['train']
        self.pretrain_iter = int(train_opt.get('pretrain_iter', 0))
        reward_opt = train_opt.get('reward_opt')
        self.cri_reward = build_loss(reward_opt).to(self.device) if reward_opt else None
        net = self.get_bare_model(self.net_g)
        self.adaptive = arch_info(net).adaptive
        if self.adaptive and self.cri_reward is None:
            raise ValueError('train.reward_opt is missing: network_g samples adaptively and its samplers learn only '
                             'from the reward loss (add reward_opt: {type: AdaptiveSamplingRewardLoss}, or set '
                             "network_g.sampling: uniform)")
        self._eval_policy = 'uniform' if self.adaptive and self.pretrain_iter > 0 else None
        super().init_training_settings()

    def _policy(self, current_iter):
        if not self.adaptive:
            return None
        return 'uniform' if current_iter <= self.pretrain_iter else 'sample'

    def compute_losses(self, aux):
        losses = super().compute_losses(aux)
        if self.cri_pix:
            for i, out in enumerate(aux.get('stage_outputs', []), start=1):
                losses[f'l_pix_stage{i}'] = self.cri_pix(out, self.gt)
        losses.update(self._reward_losses(aux))
        return losses

    def _reward_losses(self, aux):
        """One REINFORCE term per sampled stage; the reward of stage s's sampler is the error of stages s..S."""
        sampling = aux.get('sampling', [])
        if not sampling or self.cri_reward is None:
            return {}
        outputs = list(aux.get('stage_outputs', [])) + [self.output]
        baseline = None
        if self.cri_reward.baseline == 'greedy':
            net = self.get_bare_model(self.net_g)
            with torch.no_grad():
                # stage 1 samples uniformly in both passes: the sampled pass's is reused
                greedy_out, greedy_aux = net(self.lq, policy='greedy', return_aux=True, stage1=aux['stage1'])
            baseline = list(greedy_aux.get('stage_outputs', [])) + [greedy_out]
        losses = {}
        for i, record in enumerate(sampling):
            # outputs are stages 1..S (or the final one only without stage supervision); sampler i is stage S-n+i
            first = max(0, len(outputs) - len(sampling) + i)
            losses[f'l_reward_{i + 1}'] = self.cri_reward(
                record['log_prob'], outputs[first:], self.gt, record['num_selected'], record['budget'],
                baseline_outputs=None if baseline is None else baseline[first:], selected=record['selected'])
        return losses

    def train_forward_kwargs(self, current_iter):
        policy = self._policy(current_iter)
        self._eval_policy = 'uniform' if policy == 'uniform' else None  # validation follows the training phase
        return {} if policy is None else {'policy': policy}

    def test_forward_kwargs(self, net):
        policy = getattr(self, '_eval_policy', None)  # None: the net's default ('greedy' in eval mode)
        return {'policy': policy} if policy is not None and arch_info(net).adaptive else {}
