# Included after TFLM's own Makefile (make -f Makefile -f tinynas.mk): prints what tinynas needs to know and
# builds a chosen subset of the library's objects with the Makefile's own rules and flags.
tinynas_print:
	@echo "TINYNAS_CXXFLAGS=$(CXXFLAGS) $(CORE_OPTIMIZATION_LEVEL)"
	@echo "TINYNAS_CCFLAGS=$(CCFLAGS) $(CORE_OPTIMIZATION_LEVEL)"
	@echo "TINYNAS_INCLUDES=$(INCLUDES)"
	@echo "TINYNAS_LDFLAGS=$(LDFLAGS) $(MICROLITE_LIBS)"
	@echo "TINYNAS_CORE=$(MICROLITE_LIB_OBJS) $(MICROLITE_THIRD_PARTY_OBJS)"
	@echo "TINYNAS_KERNELS=$(MICROLITE_KERNEL_OBJS)"
	@echo "TINYNAS_THIRD_PARTY_KERNELS=$(MICROLITE_THIRD_PARTY_KERNEL_OBJS)"

tinynas_objs: $(TINYNAS_OBJS)

# The Cortex-M55's MVE (Helium) needs a floating-point ABI: with -mfloat-abi=soft (cortex_m_qemu's default) GCC
# turns MVE off and CMSIS-NN builds its scalar code. softfp, as TFLM's cortex_m_generic target does for the M55.
ifneq ($(filter cortex-m55%,$(TARGET_ARCH)),)
  CXXFLAGS := $(patsubst -mfloat-abi=soft,-mfloat-abi=softfp,$(CXXFLAGS))
  CCFLAGS := $(patsubst -mfloat-abi=soft,-mfloat-abi=softfp,$(CCFLAGS))
endif
