"""What a model returns, the same for every model of the zoo.

``__call__(x, *, train)`` returns the main logits, float32, and nothing else. Auxiliary classifiers
(GoogLeNet's two, Inception v3's one) are *sown* in train mode into the :data:`AUX_COLLECTION`
collection as ``{'logits': aux_logits, 'weight': w}`` under any name; the training loss
(:func:`cnnzoo.training.aux_loss`) adds ``w * cross_entropy(aux_logits)`` for each, and evaluation
never asks for the collection. Models are initialised with ``train=False``, so a model builds its
auxiliary heads when ``train or self.is_initializing()``.
"""

AUX_COLLECTION = 'aux_outputs'
