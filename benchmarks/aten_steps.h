#pragma once
// PyTorch's own fused optimizer kernels (torch.optim's fused=True), the
// reference bench_optim (CPU) and bench_cuda compare normopt's steps with,
// at the settings both use: Adam lr 1e-3, betas (0.9, 0.999), eps 1e-8;
// SGD lr 1e-3, momentum 0.9; no weight decay.

#include <ATen/ATen.h>

#include <vector>

inline void aten_fused_adam(std::vector<at::Tensor>& params,
                            const std::vector<at::Tensor>& grads,
                            std::vector<at::Tensor>& exp_avgs,
                            std::vector<at::Tensor>& exp_avg_sqs,
                            std::vector<at::Tensor>& state_steps) {
  at::_fused_adam_(params,
                   grads,
                   exp_avgs,
                   exp_avg_sqs,
                   /*max_exp_avg_sqs=*/{},
                   state_steps,
                   /*lr=*/1e-3,
                   /*beta1=*/0.9,
                   /*beta2=*/0.999,
                   /*weight_decay=*/0,
                   /*eps=*/1e-8,
                   /*amsgrad=*/false,
                   /*maximize=*/false);
}

inline void aten_fused_sgd(std::vector<at::Tensor>& params,
                           const std::vector<at::Tensor>& grads,
                           std::vector<at::Tensor>& momentum_buffers) {
  at::_fused_sgd_(params,
                  grads,
                  momentum_buffers,
                  /*weight_decay=*/0,
                  /*momentum=*/0.9,
                  /*lr=*/1e-3,
                  /*dampening=*/0,
                  /*nesterov=*/false,
                  /*maximize=*/false,
                  /*is_first_step=*/false);
}
