"""Learning-rate schedules the papers use and BasicSR 1.4.2 lacks."""
from torch.optim.lr_scheduler import LRScheduler


class PolyLR(LRScheduler):
    """Polynomial decay from each group's initial lr to ``eta_min`` over ``total_iter`` steps (SVDN: 1e-3 -> 1e-6,
    power 0.9): ``lr = (lr0 - eta_min) * (1 - it / total_iter) ** power + eta_min``, constant ``eta_min`` after.

    Args:
        optimizer (torch.optim.Optimizer): Optimizer.
        total_iter (int): Iterations of the decay.
        power (float): Decay power. Default: 0.9.
        eta_min (float): Final learning rate. Default: 0.
        last_epoch (int): Used by resuming. Default: -1.
    """

    def __init__(self, optimizer, total_iter, power=0.9, eta_min=0., last_epoch=-1):
        if total_iter <= 0:
            raise ValueError(f'PolyLR: total_iter must be positive, got {total_iter}')
        self.total_iter, self.power, self.eta_min = total_iter, power, eta_min
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        progress = min(self.last_epoch, self.total_iter) / self.total_iter
        return [(lr0 - self.eta_min) * (1 - progress)**self.power + self.eta_min for lr0 in self.base_lrs]
