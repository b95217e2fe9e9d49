"""The course's model zoo, one module per family.

Importing a family module registers its models; ``archlab.models.catalog`` imports
every family listed in ``FAMILIES`` the first time a model is looked up.
"""

FAMILIES = (
    "lenet",
    "alexnet",
    "vgg",
    "inception",
    "inception_factorized",
    "resnet",
    "densenet",
    "mobilenet",
    "efficientnet",
    "encoder_decoder",
)
