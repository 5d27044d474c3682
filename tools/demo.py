"""Segment what an expression refers to in one image; write an overlay PNG.

    python tools/demo.py IMAGE "the man on the left" CONFIG [CHECKPOINT] \
        --out out.png
"""
import argparse
import sys

from mmwris.apis import RISInferencer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('image', help='image file')
    parser.add_argument('expression', help='referring expression')
    parser.add_argument('config', help='model config file')
    parser.add_argument('checkpoint', nargs='?', default=None,
                        help='checkpoint (omit for weight-free baselines)')
    parser.add_argument('--out', default='demo_out.png',
                        help='overlay PNG to write')
    parser.add_argument('--device', default=None, help='cpu, cuda, cuda:1')
    return parser.parse_args()


def main():
    args = parse_args()
    try:
        inferencer = RISInferencer(args.config, args.checkpoint,
                                   device=args.device)
        inferencer.visualize(args.image, args.expression, out_file=args.out)
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f'demo.py: {e}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
