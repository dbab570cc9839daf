from pathlib import Path

from setuptools import setup

about = {}
exec((Path(__file__).parent / "coala_embed" / "version.py").read_text(), about)

setup(
    name="coala-embed",
    version=about["__version__"],
    description="Audio embeddings from COALA co-aligned audio and tag autoencoders (Favory et al., 2020)",
    long_description=(Path(__file__).parent / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    # the top-level weights/ folder is installed inside the package as coala_embed/weights
    packages=["coala_embed", "coala_embed.weights"],
    package_dir={"coala_embed": "coala_embed", "coala_embed.weights": "weights"},
    package_data={"coala_embed.weights": ["*.json", "*.safetensors", "*.onnx", "*.md"]},
    install_requires=[
        "torch>=2.1",
        "numpy>=1.22",
        "librosa>=0.10",
        "soundfile>=0.12",
        "soxr>=0.3",
        "resampy>=0.4",
        "huggingface-hub>=0.20",
        "click>=8.0",
        "safetensors>=0.4",
        "tqdm>=4.60",
    ],
    extras_require={
        "onnx": ["onnxruntime>=1.14"],  # backend="onnx"; exporting a checkpoint's encoder.onnx also needs onnx
        "sklearn": ["scikit-learn>=1.2"],
        "parquet": ["pyarrow>=16"],
        "ray": ["ray[data]>=2.9", "pyarrow>=16"],
        "search": ["faiss-cpu>=1.7.4", "pyarrow>=16"],
        "map": ["plotly>=5.0", "umap-learn>=0.5", "matplotlib>=3.6", "pyarrow>=16"],
        "eval": ["scikit-learn>=1.2", "matplotlib>=3.6", "scipy>=1.9"],
        "train": ["scikit-learn>=1.2", "matplotlib>=3.6", "scipy>=1.9", "h5py>=3.8", "inflect>=7.0", "mido>=1.2", "iterative-stratification>=0.1.7", "onnx>=1.14", "pyroomacoustics>=0.7", "librosa>=0.10", "soundfile>=0.13", "nltk>=3.8"],
        "test": ["pytest>=7", "pyarrow>=16", "ray[data]>=2.9", "scikit-learn>=1.2", "matplotlib>=3.6", "scipy>=1.9", "h5py>=3.8", "inflect>=7.0", "mido>=1.2", "iterative-stratification>=0.1.7",
                 "faiss-cpu>=1.7.4", "plotly>=5.0", "onnxruntime>=1.14", "onnx>=1.14",
                 "pyroomacoustics>=0.7", "librosa>=0.10", "soundfile>=0.13"],
    },
    entry_points={"console_scripts": ["coala-embed=coala_embed.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: MIT License",
        "Topic :: Multimedia :: Sound/Audio :: Analysis",
    ],
)
